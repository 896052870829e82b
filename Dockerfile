# Defender's container image, for those with a container engine:
#
#   docker build -t ghcr.io/defender-dev/defender:0.1.0 .
#
# image/build.sh builds the same image without one, from the same static
# release build (.ci/release-build.sh): one layer holding /defender (mode
# 0555) and an empty /tmp (mode 1777), both owned by root; the same user,
# entrypoint, command, port and labels. The labels repeat Cargo.toml's
# version, repository and license (tests/deploy.rs keeps them equal).

FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN bash -c 'source .ci/release-build.sh \
      && mkdir -p /rootfs/tmp && chmod 1777 /rootfs/tmp \
      && install -m 0555 "$(release_binary)" /rootfs/defender'

# No base: the binary is static and needs no shell, no libc, no certificates
# (the API server's CA comes with the service account or the kubeconfig).
FROM scratch
LABEL org.opencontainers.image.title="defender"
LABEL org.opencontainers.image.version="0.1.0"
LABEL org.opencontainers.image.source="https://github.com/defender-dev/defender"
LABEL org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /rootfs/ /
# deploy/base/deployment.yaml runs it as 65532 too.
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["/defender"]
CMD ["serve"]
