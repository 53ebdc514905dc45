# Multi-stage build: a static binary on a distroless base, running as non-root.
#   docker build --build-arg VERSION=$(git describe --tags --always) -t boomerang:dev .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/boomerang ./cmd/boomerang

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/boomerang /boomerang
USER nonroot:nonroot
# 8080 the API (BOOMERANG_ADDR), 8081 the admin listener when BOOMERANG_ADMIN_ADDR=:8081
# (on a worker-only process: /healthz and /readyz), 9090 /metrics when
# BOOMERANG_METRICS_ADDR=:9090 (deploy/compose.yaml and deploy/kubernetes set these).
EXPOSE 8080 8081 9090
# No shell or curl in distroless: the binary asks its own /readyz, on
# BOOMERANG_ADDR (api, all) or BOOMERANG_ADMIN_ADDR (worker).
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 CMD ["/boomerang", "healthcheck"]
ENTRYPOINT ["/boomerang"]
CMD ["serve"]
