// onmodel review: keyboard-first decisions. No build step, no inline script (the CSP forbids it).
(() => {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const toastEl = document.getElementById("toast");
  let toastTimer = 0;
  const toast = (text, kind = "") => {
    toastEl.textContent = text;
    toastEl.className = "show " + kind;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => (toastEl.className = ""), 3200);
  };
  const post = async (url, body) => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error || response.statusText);
    return data;
  };

  // Focus: the cards of the gallery or the images of a product page.
  const items = () => Array.from(document.querySelectorAll(".card, .shot"));
  let current = 0;
  const focus = (index) => {
    const all = items();
    if (!all.length) return;
    current = Math.max(0, Math.min(all.length - 1, index));
    all[current].focus({ preventScroll: true });
    all[current].scrollIntoView({ block: "nearest", behavior: "smooth" });
  };
  const focused = () => items()[current];
  document.addEventListener("focusin", (event) => {
    const index = items().indexOf(event.target.closest?.(".card, .shot"));
    if (index >= 0) current = index;
  });

  const runId = document.querySelector("[data-run]")?.dataset.run;
  const stateLabel = { approve: "approved", reject: "rejected" };
  const undoStack = [];

  const setState = (element, state, label) => {
    element.classList.remove("r-undecided", "r-approved", "r-rejected", "r-partial");
    element.classList.add("r-" + state);
    const badge = element.querySelector(".badge");
    if (badge) {
      badge.className = "badge r-" + state;
      badge.textContent = label || state;
    }
  };
  const refreshProduct = () => {
    const badge = document.getElementById("product-state");
    if (!badge) return;
    const states = items().map((el) => ["approved", "rejected"].find((s) => el.classList.contains("r-" + s)) || "undecided");
    const state = !states.length || states.every((s) => s === "undecided") ? "undecided"
      : states.includes("rejected") ? "rejected" : states.every((s) => s === "approved") ? "approved" : "partial";
    badge.className = "badge r-" + state;
    badge.textContent = state;
  };

  const jobsOf = (element) => (element.dataset.job ? [element.dataset.job] : (element.dataset.jobs || "").split(" ").filter(Boolean));

  const decide = async (elements, decision, reason = "", comment = "") => {
    const jobIds = elements.flatMap(jobsOf);
    if (!jobIds.length) return toast("nothing to decide here", "warn");
    const seen = {};
    elements.forEach((el) => { if (el.dataset.job) seen[el.dataset.job] = Number(el.dataset.seen || 0); });
    try {
      const data = await post(`/api/runs/${encodeURIComponent(runId)}/decisions`, { job_ids: jobIds, decision, reason, comment, seen });
      const overrode = data.decisions.filter((d) => d.overrode && d.overrode.reviewer);
      data.decisions.forEach((d) => {
        const el = document.querySelector(`.shot[data-job="${CSS.escape(d.job_id)}"]`);
        if (el) el.dataset.seen = d.decision_id;
      });
      elements.forEach((el) => setState(el, stateLabel[decision], decision === "reject" ? "rejected: " + reason.replace("_", " ") : "approved"));
      undoStack.push(jobIds);
      refreshProduct();
      if (overrode.length) {
        const o = overrode[0].overrode;
        toast(`${stateLabel[decision]} — this replaced ${o.reviewer}'s ${o.decision} from ${o.decided_at} (kept in the history)`, "warn");
      } else {
        toast(`${jobIds.length} image${jobIds.length > 1 ? "s" : ""} ${stateLabel[decision]}`);
      }
      return true;
    } catch (error) {
      toast(error.message, "bad");
      return false;
    }
  };

  const undo = async () => {
    const jobIds = undoStack.pop();
    if (!jobIds) return toast("nothing to undo", "warn");
    try {
      for (const jobId of jobIds) await post(`/api/runs/${encodeURIComponent(runId)}/undo`, { job_id: jobId });
      toast("undone — reloading");
      setTimeout(() => location.reload(), 300);
    } catch (error) {
      toast(error.message, "bad");
    }
  };

  // The reject dialog: 1-6 choose the reason, Enter rejects, Esc cancels.
  const reasons = document.getElementById("reasons");
  const askReason = () => new Promise((resolve) => {
    if (!reasons) return resolve(null);
    const form = document.getElementById("reason-form");
    form.reset();
    reasons.returnValue = "";
    reasons.showModal();
    reasons.addEventListener("close", () => {
      if (reasons.returnValue !== "ok") return resolve(null);
      const data = new FormData(form);
      resolve({ reason: data.get("reason"), comment: data.get("comment") || "" });
    }, { once: true });
  });
  reasons?.addEventListener("keydown", (event) => {
    if (event.target.name === "comment") return;
    const index = Number(event.key);
    const radios = reasons.querySelectorAll('input[name="reason"]');
    if (index >= 1 && index <= radios.length) {
      radios[index - 1].checked = true;
      if (radios[index - 1].value === "other") reasons.querySelector('input[name="comment"]').focus();
      event.preventDefault();
    } else if (event.key === "Enter") {
      event.preventDefault();
      reasons.close("ok");
    }
  });
  const reject = async (elements) => {
    const answer = await askReason();
    if (answer) await decide(elements, "reject", answer.reason, answer.comment);
    focus(current);
  };

  const zoom = document.getElementById("zoom");
  const openZoom = (element) => {
    if (!zoom || !element?.dataset.full) return;
    zoom.querySelector("img").src = element.dataset.full;
    zoom.showModal();
  };

  const head = document.querySelector(".product-head");
  const go = (url) => { if (url) location.href = url; };

  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-action]");
    if (button) {
      const shot = button.closest(".shot");
      const action = button.dataset.action;
      if (action === "help") document.getElementById("help").showModal();
      else if (action === "approve") decide([shot], "approve");
      else if (action === "reject") reject([shot]);
      else if (action === "undo") undo();
      else if (action === "zoom") openZoom(shot);
      else if (action === "approve-all") decide(items(), "approve");
      else if (action === "reject-all") reject(items());
      return;
    }
    const frame = event.target.closest(".frame");
    if (frame) openZoom(frame.closest(".shot"));
  });

  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, select, textarea") || event.ctrlKey || event.metaKey || event.altKey) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    if (document.querySelector("dialog[open]")) return;
    const key = event.key;
    const el = focused();
    const handled = {
      j: () => focus(current + 1), ArrowRight: () => focus(current + 1),
      k: () => focus(current - 1), ArrowLeft: () => focus(current - 1),
      a: () => el && decide([el], "approve"),
      r: () => el && reject([el]),
      A: () => decide(items(), "approve"),
      R: () => reject(items()),
      u: () => undo(),
      Enter: () => el && (el.dataset.href ? go(el.dataset.href) : openZoom(el)),
      n: () => go(head?.dataset.next || document.querySelector('a[rel="next"]')?.href),
      p: () => go(head?.dataset.prev || document.querySelector('a[rel="prev"]')?.href),
      "/": () => document.getElementById("search")?.focus(),
      "?": () => document.getElementById("help").showModal(),
    }[key];
    if (handled) {
      event.preventDefault();
      handled();
    }
  });

  document.querySelectorAll("[data-autosubmit]").forEach((select) => select.addEventListener("change", () => select.form.submit()));
  if (items().length) focus(0);
})();
