# syntax=docker/dockerfile:1
# whisperops operator image: multi-stage, Node 24 LTS slim, only the operator. Its own build
# (tsconfig.operator.json: operator/src/main.ts and what it imports, no edge agent) and its own
# production dependency set (operator/image/package.json + lock: ajv, pino, prom-client, yaml and
# @kubernetes/client-node, which is loaded only for kubeconfigs with exec or auth-provider users) — no
# onnxruntime-node, express or multer. Runs as a non-root user and writes nothing to its root file
# system (readOnlyRootFilesystem: true works; the chart mounts an emptyDir on /tmp).
#   docker build -t ghcr.io/whisperops/operator:0.1.0 .
# test/images/images.test.ts checks what this file COPYs and starts the entry point from exactly that.

ARG NODE_IMAGE=node:24.22.3-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
# The compiler needs the root package's types only; no install scripts (onnxruntime-node's download).
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.operator.json ./
COPY api ./api
COPY operator/src ./operator/src
RUN node node_modules/typescript/bin/tsc -p tsconfig.operator.json \
 && test -f dist/operator/src/main.js && test ! -e dist/edge-agent

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY operator/image/package.json operator/image/package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE}
LABEL org.opencontainers.image.title="whisperops-operator" \
      org.opencontainers.image.description="Kubernetes operator for Whisper-family speech models: fine-tuning on GPUs, edge rollout, WER-driven retraining" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production \
    NODE_OPTIONS="--max-old-space-size=384 --enable-source-maps"
WORKDIR /app
# package.json says "type": "module" (the compiled operator is ES modules).
COPY --from=deps --chown=root:root /app/package.json ./package.json
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /src/dist ./dist
# The base image's "node" user (uid/gid 1000); numeric so that runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 8080
ENTRYPOINT ["node", "dist/operator/src/main.js"]
CMD []
