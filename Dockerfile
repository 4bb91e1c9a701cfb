# syntax=docker/dockerfile:1
# The lagscale operator image: the manager binary only, on distroless.
# Build with `make docker-build` where a Docker engine is available; without
# one, `make image` builds the same image as an OCI archive (hack/image).

ARG GO_VERSION=1.26
FROM golang:${GO_VERSION} AS build
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/manager/ cmd/manager/
COPY controllers/ controllers/
COPY internal/ internal/
COPY pkg/ pkg/
# The build line below is also run by internal/dockerfile's test, so the image
# and the tested binary are built the same way.
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH:-amd64} go build -trimpath -ldflags="-s -w" -o /out/manager ./cmd/manager

# gcr.io/distroless/static:nonroot, pinned by digest; update the digest on
# purpose, never by pulling a moving tag.
FROM gcr.io/distroless/static:nonroot@sha256:f7f8f729987ad0fdf6b05eeeae94b26e6a0f613bdf46feea7fc40f7bd72953e6
COPY --from=build /out/manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]
