# dynamic-nginx: the official nginx image's contract, plus a watcher that keeps
# upstream blocks in step with Docker and a reloader that validates first.
FROM debian:trixie-slim AS runtime

# Removes the bytecode the runtime never loads, in the same layer as the install
# (a later layer could only hide files, not shrink the image).
COPY scripts/trim-bytecode /usr/local/lib/dynamic-nginx-build/trim-bytecode

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
    && mkdir -p /docker-entrypoint.d /run/dynamic-nginx \
    && py=/usr/lib/python3.13 \
    && rm -rf /usr/share/doc/* /usr/share/man/* /usr/share/info/* /usr/share/javascript \
        /usr/share/lintian /usr/share/bash-completion \
        $py/test $py/idlelib $py/lib2to3 $py/ensurepip $py/pydoc_data $py/tkinter $py/turtledemo \
        $py/turtle.py $py/__pycache__/turtle.* $py/__phello__ $py/config-3.13-x86_64-linux-gnu \
        $py/lib-dynload/_test*.so $py/lib-dynload/xx*.so $py/lib-dynload/_ctypes_test*.so \
        $py/lib-dynload/_xxtestfuzz*.so \
        /usr/lib/python3/dist-packages/supervisor/tests /usr/lib/python3/dist-packages/supervisor/ui \
        $py/sqlite3 $py/lib-dynload/_sqlite3*.so /usr/lib/x86_64-linux-gnu/libsqlite3.so* \
        /usr/lib/python3/dist-packages/chardet /usr/bin/chardetect \
        /usr/lib/python3/dist-packages/yaml /usr/lib/python3/dist-packages/_yaml \
        $py/curses $py/lib-dynload/_curses*.so $py/lib-dynload/_codecs_*.so \
        $py/_pydecimal.py $py/lib-dynload/_interp*.so $py/wsgiref $py/mailbox.py $py/venv $py/dbm $py/shelve.py \
    && python3 /usr/local/lib/dynamic-nginx-build/trim-bytecode \
    && rm -rf /usr/local/lib/dynamic-nginx-build
# Lean: what the runtime never loads goes (docs, man pages, Python's own test
# suite, IDLE, lib2to3, ensurepip, pydoc's topics, C test modules,
# supervisor's tests and its web UI, which needs an inet_http_server we do
# not configure), Python's sqlite3 and its library (nothing here keeps a
# database), chardet (requests then guesses charsets with charset_normalizer,
# also installed; the Docker API answers JSON in UTF-8 anyway), PyYAML
# (only watchdog's watchmedo command reads YAML), curses, Python's CJK codecs
# (the watcher reads JSON and writes ASCII config), decimal's pure-Python
# fallback (its C module stays), the subinterpreter modules only Python's own
# tests use, wsgiref, mailbox, venv, dbm and shelve (nothing here imports
# them), and the bytecode of modules the runtime never imports
# (scripts/trim-bytecode). The bytecode of what it imports stays: without it
# every Python process would compile its imports at each start.
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
# The run dir's names for bash (bin/start, run-nginx, on-fatal, healthcheck source it), from the package.
RUN python3 -m compileall -q /usr/lib/python3/dist-packages/dynamic_nginx \
    && python3 -m dynamic_nginx.rundir >/usr/local/lib/dynamic-nginx/rundir.sh \
    && ln -s /usr/local/lib/dynamic-nginx/dynamic-nginx /usr/local/bin/dynamic-nginx

# The run dir (dynamic_nginx/rundir.py's default), also for `docker exec ... supervisorctl`,
# whose supervisord.conf section names its socket there.
ENV DYNAMIC_NGINX_RUN_DIR=/run/dynamic-nginx

# bin/healthcheck: nginx answers, and nginx -t has not refused the files for
# longer than its bound. Plain bash (no Python start per check).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/lib/dynamic-nginx/healthcheck"]
ENTRYPOINT ["/docker-entrypoint.sh"]
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]

# The type check and the unit tests with the exact runtime versions (Debian's
# python3-docker, -jinja2, -watchdog; Debian's mypy and pytest), so that they
# need nothing installed on the host: docker build --target test.
FROM runtime AS test
HEALTHCHECK NONE
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3-pytest python3-hypothesis mypy \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml /src/pyproject.toml
COPY README.md /src/README.md
COPY docs/ /src/docs/
COPY entrypoint/dynamic_nginx/ /src/typecheck/dynamic_nginx/
COPY tests/unit/ /src/tests/unit/
COPY scripts/unit /src/scripts/unit
COPY scripts/trim-bytecode /src/scripts/trim-bytecode
WORKDIR /src
ENTRYPOINT []
CMD ["scripts/unit"]

FROM runtime
