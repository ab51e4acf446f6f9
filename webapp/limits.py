"""Per-client rate limits shared by the API and the no-JavaScript page forms."""

from flask import current_app

from .extensions import limiter

# Shared scopes: a page form post and an API call by the same client draw from one budget.
predict_limit = limiter.shared_limit(lambda: current_app.config["PREDICT_RATE_LIMIT"], scope="predict")
feedback_limit = limiter.shared_limit(lambda: current_app.config["FEEDBACK_RATE_LIMIT"], scope="feedback")
