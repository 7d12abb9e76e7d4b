# syntax=docker/dockerfile:1
# The clinflow application image: `clinflow worker` by default; the compose file
# also runs `clinflow db migrate` and the bucket bootstrap from it.
# Build context: the repository root (docker compose does this).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # tesseract: one thread per process; parallelism comes from processes.
    OMP_THREAD_LIMIT=1 \
    CLINFLOW_HOME=/var/lib/clinflow

RUN apt-get update \
    && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/clinflow --create-home clinflow

WORKDIR /opt/clinflow/src
COPY pyproject.toml README.md ./
COPY clinflow ./clinflow
COPY workflows ./workflows
COPY activities ./activities
COPY workers ./workers
COPY starters ./starters
RUN pip install . && cd / && rm -rf /opt/clinflow/src


WORKDIR /var/lib/clinflow
USER clinflow
CMD ["clinflow", "worker"]
