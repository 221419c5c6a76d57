#!/usr/bin/env bash
# System packages `make e2e` needs: PostgreSQL 15 and Redis 7 from Debian, installed with apt-get only
# when missing. The e2e runs its own server processes (its own data dir and ports on 127.0.0.1); it
# never uses, starts or stops a packaged service. On Debian 12 the majors are pinned by the package
# name (postgresql-15) and checked after install (redis-server 7.x), rather than by exact Debian
# revisions, which security updates replace on the mirrors.
set -euo pipefail

PG_MAJOR=15
REDIS_MAJOR=7
missing=()
dpkg-query -W -f='${Status}' "postgresql-${PG_MAJOR}" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("postgresql-${PG_MAJOR}" "postgresql-client-${PG_MAJOR}")
command -v redis-server >/dev/null || missing+=(redis-server)

if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "e2e: missing ${missing[*]}; run as root or install them: apt-get install ${missing[*]}" >&2
        exit 1
    fi
    echo "e2e: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

test -x "/usr/lib/postgresql/${PG_MAJOR}/bin/postgres" || {
    echo "e2e: /usr/lib/postgresql/${PG_MAJOR}/bin/postgres not found" >&2
    exit 1
}
redis_version=$(redis-server --version | sed -n 's/.* v=\([0-9.]*\).*/\1/p')
[[ ${redis_version%%.*} == "${REDIS_MAJOR}" ]] || {
    echo "e2e: redis-server ${redis_version} found, ${REDIS_MAJOR}.x expected" >&2
    exit 1
}
id -u postgres >/dev/null 2>&1 || {
    echo "e2e: no 'postgres' system user (it comes with the postgresql package)" >&2
    exit 1
}
echo "e2e: PostgreSQL ${PG_MAJOR} and Redis ${redis_version} present"
