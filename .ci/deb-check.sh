#!/usr/bin/env bash
# Install the release .deb that `make release-snapshot` wrote for this
# machine's architecture, use it from /usr/bin (ecrgate version, a
# credential-helper get against the packaged emulator), remove it and check
# that none of its files is left. Runs as root (.ci/run). The package is
# removed and the emulator stopped on every exit, so a failure here leaves
# nothing installed for later steps.
set -euo pipefail
cd "$(dirname "$0")/.."

arch="$(dpkg --print-architecture)"
debs=(dist/*_"$arch".deb)
if [ ! -f "${debs[0]}" ]; then
	echo "deb-check: no dist/*_$arch.deb: run make release-snapshot first" >&2
	exit 1
fi
# Every archive carries the licence and the README beside the binaries (a zip
# stores its file names uncompressed).
for a in dist/*.tar.gz dist/*.zip; do
	case "$a" in
	*.tar.gz) names="$(tar -tzf "$a")" ;;
	*) names="$(grep -a -o -E '(LICENSE|README\.md)' "$a" | sort -u)" ;;
	esac
	for f in LICENSE README.md; do
		grep -qx "$f" <<<"$names" || { echo "deb-check: $a has no $f" >&2; exit 1; }
	done
done
if dpkg -s ecrgate >/dev/null 2>&1; then
	echo "deb-check: package ecrgate is already installed; remove it first (dpkg -r ecrgate)" >&2
	exit 1
fi

tmp="$(mktemp -d)"
emu_pid=
cleanup() {
	if [ -n "$emu_pid" ]; then kill "$emu_pid" 2>/dev/null || true; wait "$emu_pid" 2>/dev/null || true; fi
	if dpkg -s ecrgate >/dev/null 2>&1; then dpkg -r ecrgate >/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

echo "== dpkg -i ${debs[0]}"
dpkg -i "${debs[0]}"
dpkg -L ecrgate | sort >"$tmp/files"
for f in /usr/bin/ecrgate /usr/bin/docker-credential-ecrgate /usr/bin/ecrgate-fetch-token /usr/bin/ecrgate-emulator \
	/usr/lib/systemd/user/ecrgate.service /usr/lib/systemd/user/ecrgate.socket /usr/lib/systemd/user/ecrgate-admin.socket \
	/usr/share/doc/ecrgate/examples/docker.service.d/ecrgate-proxy.conf /usr/share/doc/ecrgate/copyright; do
	grep -qx "$f" "$tmp/files" || { echo "deb-check: $f is not in the package" >&2; exit 1; }
done
grep -qx 'ExecStart=/usr/bin/ecrgate serve' /usr/lib/systemd/user/ecrgate.service ||
	{ echo "deb-check: the packaged ecrgate.service does not run /usr/bin/ecrgate" >&2; exit 1; }

echo "== ecrgate version"
(cd / && PATH=/usr/bin:/bin ecrgate version)

echo "== docker-credential-ecrgate get against /usr/bin/ecrgate-emulator"
/usr/bin/ecrgate-emulator --listen 127.0.0.1:0 --env-file "$tmp/emulator.env" >"$tmp/emulator.log" 2>&1 &
emu_pid=$!
for _ in $(seq 100); do [ -s "$tmp/emulator.env" ] && break; sleep 0.1; done
[ -s "$tmp/emulator.env" ] || { echo "deb-check: the emulator did not start:" >&2; cat "$tmp/emulator.log" >&2; exit 1; }
mkdir -p "$tmp/home"
(
	set -a
	# shellcheck disable=SC1091
	. "$tmp/emulator.env"
	set +a
	export HOME="$tmp/home" XDG_CACHE_HOME="$tmp/home/.cache" XDG_CONFIG_HOME="$tmp/home/.config"
	export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
	unset ECRGATE_CONFIG AWS_PROFILE
	cd / && echo 123456789012.dkr.ecr.us-east-1.amazonaws.com | PATH=/usr/bin:/bin docker-credential-ecrgate get
) >"$tmp/get.json"
grep -q '"Secret":"[^"]' "$tmp/get.json" || { echo "deb-check: get printed no Secret:" >&2; cat "$tmp/get.json" >&2; exit 1; }
echo "get: $(sed 's/"Secret":"[^"]*"/"Secret":"<redacted>"/' "$tmp/get.json")"
kill "$emu_pid"; wait "$emu_pid" 2>/dev/null || true; emu_pid=

echo "== dpkg -r ecrgate"
dpkg -r ecrgate
left=0
while read -r f; do
	# Directories the package shares with the system (/usr/bin, /usr/lib/systemd/user …) stay.
	case "$f" in /. | /usr | /usr/bin | /usr/lib | /usr/lib/systemd | /usr/lib/systemd/user | /usr/share | /usr/share/doc) continue ;; esac
	if [ -e "$f" ] || [ -L "$f" ]; then echo "deb-check: left after dpkg -r: $f" >&2; left=1; fi
done <"$tmp/files"
if dpkg -s ecrgate 2>/dev/null | grep -q '^Status: install'; then echo "deb-check: ecrgate still installed" >&2; left=1; fi
[ "$left" = 0 ]
echo "deb-check: installed, ran, removed; $(wc -l <"$tmp/files") paths checked"
