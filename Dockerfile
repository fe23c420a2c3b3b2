# syntax=docker/dockerfile:1
# dropline: SRT in, LL-HLS out.
#   docker build -t dropline .
#   docker run --rm -p 8080:8080 -p 9000:9000/udp dropline                       # wait for publishers
#   docker run --rm -p 8080:8080 -p 9000:9000/udp dropline \
#     dropline serve --srt-listen 0.0.0.0:9000 --http-listen 0.0.0.0:8080 \
#       --web-root /usr/share/dropline/web --test-source demo                    # built-in test pattern

# --- Rust build (edition 2024 needs rustc >= 1.95; GStreamer 1.22 headers from bookworm) ---
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p gateway --bin dropline \
 && install -D -m 0755 target/release/dropline /out/dropline

# --- Player page: hls.js from the lockfile (playwright-core and shaka-player are test-only devDependencies, left out) ---
FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY web/ ./
RUN mkdir -p /out/web/node_modules/hls.js \
 && cp -r node_modules/hls.js/dist /out/web/node_modules/hls.js/dist \
 && cp node_modules/hls.js/LICENSE /out/web/node_modules/hls.js/ \
 && find . -maxdepth 1 -type f \( -name '*.html' -o -name '*.js' -o -name '*.css' \) ! -name 'shaka.*' \
      -exec cp {} /out/web/ \;

# --- Runtime: GStreamer 1.22 plugins (demux/parse/decode/test source/SRT) and the binary ---
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates fonts-dejavu-core \
      gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
      gstreamer1.0-plugins-ugly gstreamer1.0-libav \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /var/lib/dropline --shell /usr/sbin/nologin dropline
COPY --from=build /out/dropline /usr/local/bin/dropline
COPY --from=web /out/web /usr/share/dropline/web
USER dropline
# GStreamer keeps its plugin registry cache in $HOME/.cache.
WORKDIR /var/lib/dropline
EXPOSE 8080 9000/udp
CMD ["dropline","serve","--srt-listen","0.0.0.0:9000","--http-listen","0.0.0.0:8080","--web-root","/usr/share/dropline/web"]
