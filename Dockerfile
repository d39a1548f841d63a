# The official Airflow image with this provider installed from the checkout (and its Redis extra).
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root . /opt/airflow-vendorauth
# celery 5.7 dropped an import the celery provider still uses: keep 5.5/5.6 (see pyproject.toml)
RUN pip install --no-cache-dir "/opt/airflow-vendorauth[redis]" "celery[redis]>=5.5,<5.7"
