# syntax=docker/dockerfile:1
# whisperops operator image: multi-stage, Node 20 slim, runs as a non-root user and writes nothing to
# its root file system (so readOnlyRootFilesystem: true works; the chart mounts an emptyDir on /tmp).
#   docker build -t ghcr.io/whisperops/operator:0.1.0 .

FROM node:20-slim AS build
WORKDIR /src
# The operator does not use onnxruntime-node (the edge agent does): skip its native download.
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY api ./api
COPY operator/src ./operator/src
COPY edge-agent/src ./edge-agent/src
RUN npx tsc -p tsconfig.build.json \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:20-slim
LABEL org.opencontainers.image.title="whisperops-operator" \
      org.opencontainers.image.description="Kubernetes operator for Whisper-family speech models: fine-tuning on GPUs, edge rollout, WER-driven retraining" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production \
    NODE_OPTIONS="--max-old-space-size=384 --enable-source-maps"
WORKDIR /app
COPY --from=build --chown=root:root /src/package.json ./package.json
COPY --from=build --chown=root:root /src/node_modules ./node_modules
COPY --from=build --chown=root:root /src/dist ./dist
# The base image's "node" user (uid/gid 1000); numeric so that runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 8080
ENTRYPOINT ["node", "dist/operator/src/main.js"]
CMD []
