"""Extensions created unbound here and bound to each app in ``create_app``."""

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_socketio import SocketIO
from flask_wtf.csrf import CSRFProtect

socketio = SocketIO()
csrf = CSRFProtect()
# Limits are declared per route; memory storage unless RATELIMIT_STORAGE_URI names a shared one.
limiter = Limiter(key_func=get_remote_address)
