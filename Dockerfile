# The server image used by docker-compose.yml. The database is a separate container (GEOSERVER_DATABASE_URL).
# First stage: the web map's npm packages (Debian's Node), copied by scripts/build-web into geoserver/web/vendor.
FROM python:3.11-slim-bookworm AS web
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY scripts/build-web ./scripts/
RUN npm ci --ignore-scripts --omit=dev --no-audit --no-fund && scripts/build-web

FROM python:3.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md ./
COPY geoserver ./geoserver
COPY --from=web /app/geoserver/web/vendor ./geoserver/web/vendor
COPY layers ./layers
COPY tiles ./tiles
RUN pip install --no-cache-dir . && useradd --system --create-home geoserver \
    && mkdir -p /var/lib/geoserver && chown geoserver /var/lib/geoserver
USER geoserver
ENV GEOSERVER_DATA_DIR=/var/lib/geoserver
EXPOSE 8000
CMD ["geoserver", "serve"]
