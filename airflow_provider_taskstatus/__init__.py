"""Apache Airflow provider: wait for Coze copy tasks and TrueWatch (Guance) import/export tasks."""

__version__ = "0.1.0"
