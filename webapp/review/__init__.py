"""The review app: reviewers browse a run's images, approve or reject them, and export what they approved."""
