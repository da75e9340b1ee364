// Package deploy holds no code: its directory is stagegate's deployment
// material (deploy/compose.yaml, deploy/kubernetes/, deploy/grafana/) and
// its tests check that material, and the top-level Dockerfile and
// .dockerignore, against the code: ports, volumes, health checks, the
// STAGEGATE_* variables internal/config reads, Secret keys, and the metric
// names a dashboard queries. No container engine is needed: files are
// parsed (the Dockerfile with BuildKit's own parser) and the binary is
// built and run as the image would run it.
package deploy
