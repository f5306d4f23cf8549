// Package e2e holds the end-to-end tests that run the real `latchkey` binary as a
// separate process, on SQLite and on PostgreSQL, and talk to it over HTTP only.
package e2e
