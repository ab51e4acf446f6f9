# Emotion Lens: one image for the web processes and the model workers (compose.yaml picks the command).
#   docker build -t emotion-lens .                                                     # CPU torch (default)
#   docker build -t emotion-lens --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 .   # CUDA torch
# A CUDA image runs the model worker on a GPU host with `docker run --gpus all ... python -m model_server.serve`;
# the CUDA wheels bring their own runtime libraries, so the slim base works with the NVIDIA container toolkit.
# Not built on the machine this was written on (no Docker there); deploy/topology.py runs the same processes.
ARG PYTHON_VERSION=3.11

FROM node:20-slim AS frontend
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:${PYTHON_VERSION}-slim AS build
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0
ENV PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# The CPU wheel keeps the image near 1 GB instead of several GB of CUDA libraries.
RUN pip install --index-url "$TORCH_INDEX" "torch==$TORCH_VERSION"
WORKDIR /app
COPY pyproject.toml README.md ./
COPY model_server ./model_server
COPY webapp ./webapp
# Editable: the app finds templates/ and static/ beside its package, as in a checkout; the runtime stage copies
# /app to the same path, so the install's pointers stay valid. serve = redis, postgres = psycopg.
RUN pip install -e ".[serve,postgres]"

FROM python:${PYTHON_VERSION}-slim
ENV PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
COPY templates ./templates
COPY static ./static
COPY deploy ./deploy
COPY --from=frontend /app/node_modules ./node_modules
RUN useradd --create-home app && mkdir -p /app/instance /data/media && chown app /app/instance /data/media
USER app
EXPOSE 8000
# One eventlet worker per process (deploy/gunicorn.conf.py refuses more); scale with more containers.
CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py", "-b", "0.0.0.0:8000", "webapp:create_app()"]
