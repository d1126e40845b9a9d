# The server image used by docker-compose.yml. The database is a separate container (GEOSERVER_DATABASE_URL).
FROM python:3.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md ./
COPY geoserver ./geoserver
COPY layers ./layers
COPY tiles ./tiles
RUN pip install --no-cache-dir . && useradd --system --create-home geoserver \
    && mkdir -p /var/lib/geoserver && chown geoserver /var/lib/geoserver
USER geoserver
ENV GEOSERVER_DATA_DIR=/var/lib/geoserver
EXPOSE 8000
CMD ["geoserver", "serve"]
