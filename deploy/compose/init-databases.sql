-- One database per service, in each instance's PostgreSQL.
CREATE DATABASE registry;
CREATE DATABASE programs;
CREATE DATABASE ledger;
