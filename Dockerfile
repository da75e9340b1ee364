# syntax=docker/dockerfile:1
#
# stagegate's container image: one static binary on distroless, run as a
# non-root user, data under the /data volume.
#
#   docker build -t stagegate .
#   docker run -p 8080:8080 -v stagegate-data:/data -e STAGEGATE_KEY_PASSWORD=… stagegate
#
# deploy/deploy_test.go parses this file: the Go version must be go.mod's,
# the user must not be root, EXPOSE, VOLUME and HEALTHCHECK must agree with
# CMD, and the build and CMD are run as written.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# SQLite is pure Go (modernc.org/sqlite): no cgo, so the binary is static
# and runs on an image with no libc.
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w" -o /out/stagegate ./cmd/stagegate
# The volume's mount point, owned by the runtime user: a fresh named volume
# takes the ownership of the directory it is mounted on.
RUN mkdir -p /out/data && chmod 0700 /out/data

# distroless/static: CA certificates, tzdata, /etc/passwd with the nonroot
# user (65532), no shell and no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="stagegate" \
      org.opencontainers.image.description="Release gate for AI artifacts: immutable, signed, promoted through gates" \
      org.opencontainers.image.source="https://github.com/stagegate/stagegate" \
      org.opencontainers.image.url="https://github.com/stagegate/stagegate" \
      org.opencontainers.image.documentation="https://github.com/stagegate/stagegate#deployment" \
      org.opencontainers.image.vendor="stagegate" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/stagegate /usr/local/bin/stagegate
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
EXPOSE 8080
VOLUME ["/data"]
# The binary probes itself: the image has no curl and no shell.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["stagegate", "healthcheck", "--url", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["stagegate"]
CMD ["serve", "--addr", "0.0.0.0:8080", "--data-dir", "/data"]
