# syntax=docker/dockerfile:1
#
# The workers of modelrelease, one image for both: the release worker (workers/release.ts, the default command) serves
# modelReleaseWorkflow and its CPU activities (config, acquire, gitops) on the `model-release` task queue; the
# evaluation worker (`npx tsx workers/evaluation.ts`) serves fairness, robustness and explain on `evaluation`.
# Configured through the environment, see workers/settings.ts and docker-compose.yml.
# Build: `docker build -t modelrelease/worker:0.1.0 .`
FROM node:20.19.5-bookworm-slim

# git: the gitops activity commits and pushes with the git CLI (through simple-git).
# ca-certificates: https:// and hf:// model sources, and a GitOps remote over HTTPS.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
ENV NODE_ENV=production \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false

# Dependencies before the code, so that a code change reuses this layer.
# --ignore-scripts: the postinstall provides the Temporal CLI (dev server) for `npm start` and the tests, which a
# worker does not need; the Temporal native bridge, swc and esbuild come as prebuilt platform packages.
# --omit=dev: tsx (which runs the TypeScript sources) is a runtime dependency; type checker, linters and vitest are not.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --omit=dev && npm cache clean --force

# The sources the workers run (what .dockerignore leaves): workflows, activities, workers, config, scripts, client.
COPY . .

# The workflow code bundled once here, not by webpack at every worker start; MREL_WORKFLOW_BUNDLE (below) points the
# release worker at it, and a missing or broken bundle stops the worker instead of silently re-bundling. The build
# writes workflow-bundle.encoded-failures.js beside it too: a worker with payload-codec keys loads that one.
RUN npx tsx scripts/build-workflow-bundle.ts /app/dist/workflow-bundle.js

# Mount points for the volumes in docker-compose.yml, owned by the unprivileged user so that fresh named volumes
# inherit that ownership: the artifact store, scratch space for GitOps clones, the bare GitOps repository, and
# models to release from file:// sources.
RUN mkdir -p /var/lib/modelrelease/store /var/lib/modelrelease/work /srv/gitops /models \
    && chown -R node:node /var/lib/modelrelease /srv/gitops /models
USER node

ENV MREL_STORE=/var/lib/modelrelease/store \
    MREL_DATA_DIR=/var/lib/modelrelease/work \
    MREL_GITOPS_REPO=/srv/gitops/gitops.git \
    MREL_WORKFLOW_BUNDLE=/app/dist/workflow-bundle.js

# The workers drain on SIGTERM (the SDK's default shutdown signals); run them under an init (`init: true` in compose)
# so that the signal reaches them through npx.
CMD ["npx", "tsx", "workers/release.ts"]
