"""HTTP surfaces of onmodel (the CSV upload endpoint; the review app will live beside it). No Prefect here."""
