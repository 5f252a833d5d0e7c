"""The review app over HTTP: pages, decisions and their history, auth, CSRF, traversal, escaping, headers."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from catalog.state import open_job_store
from flows.produce import run_catalog
from tests.webapp.review.conftest import HOSTILE_TITLE, review_args
from webapp.review.command import build
from webapp.review.security import ReviewConfigError, hash_password

BASE = "http://127.0.0.1:8600"


def _csrf(client: TestClient, path: str = "/") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    marker = '<meta name="csrf-token" content="'
    return page.text.split(marker, 1)[1].split('"', 1)[0]


def _run_id(out: Path) -> str:
    return next((out / "runs").iterdir()).name


def _jobs(out: Path) -> list[str]:
    summary = json.loads(next((out / "runs").glob("*/summary.json")).read_text())
    return [job["job_id"] for product in summary["products"] for job in product["jobs"]]


def _decide(client: TestClient, run_id: str, jobs: list[str], decision: str, csrf: str, **extra: object):
    return client.post(
        f"/api/runs/{run_id}/decisions",
        json={"job_ids": jobs, "decision": decision, **extra},
        headers={"X-CSRF-Token": csrf},
    )


def test_pages_escape_hostile_titles_and_send_security_headers(client: TestClient, produced) -> None:
    out = produced[2]
    run_id = _run_id(out)
    for path in ("/", f"/runs/{run_id}", "/runs/catalogue?q=SKU", f"/runs/{run_id}/products/SKU-00"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert HOSTILE_TITLE not in response.text and "<script>alert" not in response.text
        headers = response.headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
    page = client.get(f"/runs/{run_id}/products/SKU-00").text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    # A hostile reviewer comment is escaped too.
    csrf = _csrf(client)
    job = _jobs(out)[0]
    assert (
        _decide(
            client, run_id, [job], "reject", csrf, reason="other", comment="<b onmouseover=x>"
        ).status_code
        == 200
    )
    assert "&lt;b onmouseover=x&gt;" in client.get(f"/runs/{run_id}/products/SKU-00").text


@pytest.mark.parametrize(
    "path",
    [
        "/files/../state.sqlite",
        "/files/%2e%2e/state.sqlite",
        "/files/images/../../state.sqlite",
        "/files/images/..%2f..%2fstate.sqlite",
        "/files/%252e%252e/state.sqlite",
        "/files/images%2f..%2f..%2fstate.sqlite",
        "/files/runs/x/summary.json",
        "/files/catalogue.json",
        "/files/.locks/catalogue.lock",
        "/files/images/master/SKU-00/nope.png",
        "/files//etc/passwd",
        "/files/images\\..\\state.sqlite",
        "/files/images/master/SKU-00/%00.png",
    ],
)
def test_only_files_under_the_served_folders_are_served(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404, path
    assert "SQLite" not in response.text


def test_a_real_image_is_served_with_nosniff(client: TestClient, produced) -> None:
    out = produced[2]
    image = next((out / "images" / "master").rglob("*.png")).relative_to(out).as_posix()
    response = client.get(f"/files/{image}")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_state_changes_need_the_sessions_csrf_token(client: TestClient, produced) -> None:
    out = produced[2]
    run_id, job = _run_id(out), _jobs(out)[0]
    csrf = _csrf(client)
    assert _decide(client, run_id, [job], "approve", "").status_code == 403
    assert _decide(client, run_id, [job], "approve", "forged").status_code == 403
    cross_site = client.post(
        f"/api/runs/{run_id}/decisions",
        json={"job_ids": [job], "decision": "approve"},
        headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"},
    )
    assert cross_site.status_code == 403
    other = TestClient(client.app, base_url=BASE)  # another browser: its own session, its own token
    _csrf(other)
    assert _decide(other, run_id, [job], "approve", csrf).status_code == 403
    assert _decide(client, run_id, [job], "approve", csrf).status_code == 200
    assert client.post(f"/runs/{run_id}/export", data={"preset": "amazon"}).status_code == 403


def test_decisions_are_stored_with_who_and_when_and_a_later_one_wins_visibly(
    client: TestClient, produced
) -> None:
    out = produced[2]
    run_id, job = _run_id(out), _jobs(out)[0]
    ana = _csrf(client)
    first = _decide(client, run_id, [job], "approve", ana, seen={job: 0}).json()["decisions"][0]
    assert (first["reviewer"], first["decision"], first["overrode"]) == ("ana", "approve", None)
    # A second reviewer's page was drawn before ana decided: their rejection wins, and says whom it overrode.
    bo = TestClient(build(review_args(out, reviewer="bo")), base_url=BASE)
    second = _decide(bo, run_id, [job], "reject", _csrf(bo), reason="face_hands", seen={job: 0}).json()
    assert second["decisions"][0]["overrode"]["reviewer"] == "ana"
    store = open_job_store(out / "state.sqlite")
    history = store.history(job)
    assert [(d.reviewer, d.decision, d.reason) for d in history] == [
        ("ana", "approve", ""),
        ("bo", "reject", "face_hands"),
    ]
    assert all(d.decided_at and d.image_key.startswith(f"images/master/SKU-00/{job}.png#") for d in history)
    assert store.decisions([job])[job].decision == "reject"
    page = client.get(f"/runs/{run_id}/products/SKU-00").text
    assert "rejected by bo" in page and "approved by ana" not in page
    history_api = client.get(f"/api/jobs/{job}/history").json()["history"]
    assert [h["reviewer"] for h in history_api] == ["ana", "bo"]


def test_bad_decisions_get_clear_errors(client: TestClient, produced) -> None:
    out = produced[2]
    run_id, job = _run_id(out), _jobs(out)[0]
    csrf = _csrf(client)
    assert "needs a reason" in _decide(client, run_id, [job], "reject", csrf).json()["error"]
    assert "needs a comment" in _decide(client, run_id, [job], "reject", csrf, reason="other").json()["error"]
    assert _decide(client, run_id, ["NOPE__front__v0"], "approve", csrf).status_code == 404
    assert _decide(client, run_id, [], "approve", csrf).status_code == 400
    assert _decide(client, run_id, [job], "maybe", csrf).status_code == 422
    assert client.get("/runs/nope").status_code == 404
    assert client.get(f"/runs/{run_id}/products/NOPE").status_code == 404


def test_undo_puts_back_the_verdict_before(client: TestClient, produced) -> None:
    out = produced[2]
    run_id, job = _run_id(out), _jobs(out)[0]
    csrf = _csrf(client)
    _decide(client, run_id, [job], "reject", csrf, reason="wrong_pose")
    _decide(client, run_id, [job], "approve", csrf)
    undo = client.post(
        f"/api/runs/{run_id}/undo", json={"job_id": job}, headers={"X-CSRF-Token": csrf}
    ).json()
    assert undo["decision"]["decision"] == "reject"
    client.post(f"/api/runs/{run_id}/undo", json={"job_id": job}, headers={"X-CSRF-Token": csrf})
    store = open_job_store(out / "state.sqlite")
    assert store.decisions([job])[job].decision == "clear"  # back to undecided, every step in the history
    assert len(store.history(job)) == 4


def test_gallery_filters_by_review_state_flag_category_and_search(client: TestClient, produced) -> None:
    out = produced[2]
    run_id = _run_id(out)
    csrf = _csrf(client)
    jobs = [j for j in _jobs(out) if j.startswith("SKU-01")]
    assert (
        'data-sku="SKU-01"' not in client.get(f"/runs/{run_id}?state=approved").text
    )  # drawn (and cached) first
    _decide(client, run_id, jobs, "approve", csrf)
    approved = client.get(f"/runs/{run_id}?state=approved").text
    assert 'data-sku="SKU-01"' in approved and 'data-sku="SKU-00"' not in approved
    undecided = client.get(f"/runs/{run_id}?state=undecided").text
    assert 'data-sku="SKU-00"' in undecided and 'data-sku="SKU-01"' not in undecided
    assert 'data-sku="SKU-01"' not in client.get(f"/runs/{run_id}?q=sku-00").text
    assert "No product matches" in client.get(f"/runs/{run_id}?category=jeans").text
    runs = client.get("/").text
    assert f"/runs/{run_id}" in runs and "2 / 4" in runs  # review progress: 2 of 4 images decided


def test_export_of_approved_images_as_a_zip_and_a_folder(client: TestClient, produced) -> None:
    out = produced[2]
    run_id = _run_id(out)
    csrf = _csrf(client)
    approved = [j for j in _jobs(out) if j.startswith("SKU-01")]
    _decide(client, run_id, approved, "approve", csrf)
    response = client.post(f"/runs/{run_id}/export?csrf={csrf}", data={"preset": "amazon", "as": "zip"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    names = sorted(zipfile.ZipFile(io.BytesIO(response.content)).namelist())
    assert names == sorted(f"images/amazon/SKU-01/{job}.{ext}" for job in approved for ext in ("jpg", "json"))
    folder = client.post(f"/runs/{run_id}/export?csrf={csrf}", data={"preset": "shopify", "as": "folder"})
    assert folder.status_code == 200
    assert len(list((out / "exports" / f"{run_id}-shopify").rglob("*.jpg"))) == len(approved)


def test_the_next_run_renders_exactly_the_rejected_images_with_new_seeds(
    client: TestClient, produced
) -> None:
    csv_path, profile, out = produced
    run_id = _run_id(out)
    csrf = _csrf(client)
    jobs = _jobs(out)
    rejected, approved = jobs[0], jobs[1]
    before = {
        job: (out / "images" / "master" / job.split("__")[0] / f"{job}.png").read_bytes() for job in jobs
    }
    old_seed = json.loads((out / "images" / "master" / "SKU-00" / f"{rejected}.json").read_text())["seed"]
    _decide(client, run_id, [rejected], "reject", csrf, reason="garment_distorted", comment="sleeve melted")
    _decide(client, run_id, [approved], "approve", csrf)
    report = run_catalog(str(csv_path), str(profile), str(out))
    produced_now = [j.job_id for p in report.products for j in p.jobs if j.state == "produced"]
    assert produced_now == [rejected]
    meta = json.loads((out / "images" / "master" / "SKU-00" / f"{rejected}.json").read_text())
    assert meta["seed"] != old_seed
    assert meta["rerender_of"]["previous_seed"] == old_seed
    assert (meta["rerender_of"]["reason"], meta["rerender_of"]["comment"]) == (
        "garment_distorted",
        "sleeve melted",
    )
    for job in jobs[1:]:
        assert (out / "images" / "master" / job.split("__")[0] / f"{job}.png").read_bytes() == before[job]
    # The new render is undecided; a run after it renders nothing.
    page = client.get("/runs/catalogue/products/SKU-00").text
    assert f'class="shot r-undecided" tabindex="-1" data-job="{rejected}"' in page
    again = run_catalog(str(csv_path), str(profile), str(out))
    assert again.counts["produced"] == 0


def test_an_approved_image_is_kept_even_when_the_config_changes(
    client: TestClient, produced, tmp_path
) -> None:
    from tests.flows.helpers import small_profile

    csv_path, _profile, out = produced
    run_id = _run_id(out)
    csrf = _csrf(client)
    approved = _jobs(out)[0]
    _decide(client, run_id, [approved], "approve", csrf)
    image = out / "images" / "master" / "SKU-00" / f"{approved}.png"
    before = image.read_bytes()
    (tmp_path / "reseeded").mkdir()
    report = run_catalog(
        str(csv_path), str(small_profile(tmp_path / "reseeded", variants=1, seed=7)), str(out)
    )
    states = {j.job_id: (j.state, j.reason) for p in report.products for j in p.jobs}
    assert states[approved] == ("skipped", "approved by a reviewer: kept as it is")
    assert image.read_bytes() == before
    assert sum(state == "produced" for state, _ in states.values()) == len(states) - 1


def test_bound_beyond_loopback_the_app_needs_auth(produced, monkeypatch, tmp_path: Path) -> None:
    out = produced[2]
    with pytest.raises(ReviewConfigError, match="without auth"):
        build(review_args(out, host="0.0.0.0"))
    monkeypatch.setenv("REVIEW_TOKEN", "short")
    with pytest.raises(ReviewConfigError, match="at least 16"):
        build(review_args(out, host="0.0.0.0", token_env="REVIEW_TOKEN"))
    token = "t0ken-for-the-review-team"
    monkeypatch.setenv("REVIEW_TOKEN", token)
    client = TestClient(build(review_args(out, host="0.0.0.0", token_env="REVIEW_TOKEN")), base_url=BASE)
    assert client.get("/", follow_redirects=False).status_code == 303
    run_id, job = _run_id(out), _jobs(out)[0]
    assert (
        client.post(
            f"/api/runs/{run_id}/decisions", json={"job_ids": [job], "decision": "approve"}
        ).status_code
        == 401
    )
    assert (
        client.get(
            f"/files/{next((out / 'images').rglob('*.png')).relative_to(out).as_posix()}",
            follow_redirects=False,
        ).status_code
        == 303
    )
    assert client.post("/login", data={"name": "cy", "password": "wrong"}).status_code == 401
    assert (
        client.post("/login", data={"name": "cy", "password": token}, follow_redirects=False).status_code
        == 303
    )
    assert _decide(client, run_id, [job], "approve", _csrf(client)).json()["decisions"][0]["reviewer"] == "cy"
    # A users file with scrypt hashes.
    users = tmp_path / "users.yaml"
    users.write_text(f"dee: '{hash_password('correct horse')}'\n")
    by_user = TestClient(build(review_args(out, host="0.0.0.0", users=users)), base_url=BASE)
    assert by_user.post("/login", data={"name": "dee", "password": "wrong horse"}).status_code == 401
    assert by_user.post("/login", data={"name": "dee", "password": "correct horse"}).status_code == 200
    assert "dee" in by_user.get("/").text
