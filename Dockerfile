# dynamic-nginx: the official nginx image's contract, plus a watcher that keeps
# upstream blocks in step with Docker and a reloader that validates first.
FROM debian:trixie-slim AS runtime

# uid/gid 101 like the official image, created before any package can take it.
RUN groupadd --system --gid 101 nginx \
    && useradd --system --uid 101 --gid nginx --no-create-home \
        --home-dir /nonexistent --shell /bin/false nginx \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        nginx libnginx-mod-stream supervisor gettext-base \
        python3 python3-docker python3-jinja2 python3-watchdog \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
    && rm -rf /etc/supervisor/conf.d /etc/nginx/sites-enabled /etc/nginx/sites-available /etc/nginx/conf.d/* /var/www/html \
    && ln -sf /proc/1/fd/1 /var/log/nginx/access.log \
    && ln -sf /proc/1/fd/2 /var/log/nginx/error.log \
    && ln -s nginx /usr/sbin/nginx-debug \
    && rm -rf /var/lib/nginx \
    && mkdir -p /var/cache/nginx \
    && ln -s /var/cache/nginx /var/lib/nginx \
    && install -d -o nginx -g root -m 0700 \
        /var/cache/nginx/body /var/cache/nginx/proxy /var/cache/nginx/fastcgi \
        /var/cache/nginx/uwsgi /var/cache/nginx/scgi \
    && mkdir -p /docker-entrypoint.d /run/dynamic-nginx
# nginx-debug: the official image's debug build; Debian's nginx is built
# --with-debug, so the same binary under that name does the same.
# Temp files: Debian's nginx uses /var/lib/nginx/*, the official image
# /var/cache/nginx/*_temp. The symlink puts them where users of the official
# image mount a tmpfs for read_only: true; made in advance (owned by nginx),
# they also let nginx start read-only without that tmpfs.
# No /etc/nginx/templates: as in the official image, it exists once mounted.

COPY nginx/nginx.conf /etc/nginx/nginx.conf
COPY nginx/default.conf /etc/nginx/conf.d/default.conf
# The watcher runs as dynamic-nginx, uid/gid 102 (dynamic_nginx/privilege.py), and writes
# conf.d without any capability unless a folder it cannot write is mounted there.
RUN groupadd --system --gid 102 dynamic-nginx \
    && useradd --system --uid 102 --gid dynamic-nginx --no-create-home \
        --home-dir /nonexistent --shell /bin/false dynamic-nginx \
    && chgrp dynamic-nginx /etc/nginx/conf.d && chmod 0775 /etc/nginx/conf.d
# The packaged version 10-listen-on-ipv6-by-default.sh compares default.conf with.
COPY nginx/default.conf /usr/share/dynamic-nginx/default.conf
COPY nginx/html/ /usr/share/nginx/html/
COPY supervisord.conf /etc/supervisor/supervisord.conf
COPY templates/ /usr/share/dynamic-nginx/templates/
COPY entrypoint/docker-entrypoint.sh /docker-entrypoint.sh
COPY entrypoint/docker-entrypoint.d/ /docker-entrypoint.d/
COPY entrypoint/bin/ /usr/local/lib/dynamic-nginx/
COPY entrypoint/dynamic_nginx/ /usr/lib/python3/dist-packages/dynamic_nginx/
RUN python3 -m compileall -q /usr/lib/python3/dist-packages/dynamic_nginx

ENTRYPOINT ["/docker-entrypoint.sh"]
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]

# The type check and the unit tests with the exact runtime versions (Debian's
# python3-docker, -jinja2, -watchdog; Debian's mypy and pytest), so that they
# need nothing installed on the host: docker build --target test.
FROM runtime AS test
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3-pytest python3-hypothesis mypy \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml /src/pyproject.toml
COPY README.md /src/README.md
COPY entrypoint/dynamic_nginx/ /src/typecheck/dynamic_nginx/
COPY tests/unit/ /src/tests/unit/
COPY scripts/unit /src/scripts/unit
WORKDIR /src
ENTRYPOINT []
CMD ["scripts/unit"]

FROM runtime
