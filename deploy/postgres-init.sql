-- purpose: the second database the compose stack needs (Prefect's); MLflow's is POSTGRES_DB
CREATE DATABASE prefect;
