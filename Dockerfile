# Emotion Lens: CPU image. For a GPU host, swap the torch index URL for a CUDA one
# (e.g. https://download.pytorch.org/whl/cu124) and run with --gpus all.
FROM node:20-slim AS frontend
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
# The CPU wheel keeps the image near 1 GB instead of several GB of CUDA libraries.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"
COPY pyproject.toml README.md ./
COPY model_server ./model_server
COPY webapp ./webapp
COPY templates ./templates
COPY static ./static
# Editable: the app finds templates/ and static/ beside its package, as in a checkout.
RUN pip install -e .
COPY --from=frontend /app/node_modules ./node_modules
RUN useradd --create-home app && mkdir -p /app/instance && chown app /app/instance
USER app
EXPOSE 8000
# One eventlet worker per container: the model is loaded once per worker; scale with more containers.
CMD ["gunicorn", "-k", "eventlet", "-w", "1", "-b", "0.0.0.0:8000", "webapp:create_app()"]
