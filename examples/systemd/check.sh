#!/usr/bin/env bash
# Checks examples/systemd/devicehooks.service under a real systemd: boots this
# machine's own OS (Debian with systemd) in a throwaway container
# (systemd-nspawn --volatile=yes: a fresh /etc and /var in memory, nothing
# written to the host), puts in the unit, its environment file and a
# devicehooks user (bind-mounted, as docs/operations.md installs them), and
# checks that the hardened service
#
#   - starts, makes its state directory 0700 and its files 0600, and prints no
#     secret to the journal when they are given in the environment file;
#   - serves the API and a webhook whose simulated players (MQTT) ack it;
#   - lets reset-password run as its user, as docs/operations.md says;
#   - restarts, and stops cleanly on SIGTERM;
#   - rates OK in systemd-analyze security.
#
#   sudo examples/systemd/check.sh        # about a minute; exits non-zero on a failure
#
# Needs root, systemd-nspawn (Debian: systemd-container), Go and curl. Other
# services of the machine's packages may start in the container too (on its
# own network); they do not matter.
set -euo pipefail

cd "$(dirname "$0")/../.."
if [ "$(id -u)" -ne 0 ]; then
	echo "check.sh: run it as root (systemd-nspawn)" >&2
	exit 2
fi
command -v systemd-nspawn >/dev/null || {
	echo "check.sh: needs systemd-nspawn (Debian: apt-get install systemd-container)" >&2
	exit 2
}
command -v go >/dev/null || {
	echo "check.sh: needs go on the PATH (sudo env PATH=\"\$PATH\" $0)" >&2
	exit 2
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/etc" "$tmp/out"
go build -o "$tmp/bin/devicehooks" ./cmd/devicehooks

# The devicehooks user (useradd --system), in copies of the host's files,
# with an id no user or group of the host has.
cp /etc/passwd /etc/group "$tmp/etc/"
id=990
while getent passwd "$id" >/dev/null || getent group "$id" >/dev/null; do id=$((id - 1)); done
if ! getent passwd devicehooks >/dev/null; then
	echo "devicehooks:x:$id:$id::/var/lib/devicehooks:/usr/sbin/nologin" >>"$tmp/etc/passwd"
	echo "devicehooks:x:$id:" >>"$tmp/etc/group"
fi

token="dha_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
password="$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf 'DEVICEHOOKS_ADMIN_TOKEN=%s\nDEVICEHOOKS_ADMIN_PASSWORD=%s\n' "$token" "$password" >"$tmp/etc/devicehooks.env"
chmod 600 "$tmp/etc/devicehooks.env"

cat >"$tmp/probe.service" <<'EOF'
[Unit]
Description=devicehooks unit check
After=devicehooks.service
[Service]
Type=oneshot
EnvironmentFile=/etc/devicehooks.env
ExecStart=/run/probe.sh
ExecStopPost=/bin/systemctl poweroff
EOF

cat >"$tmp/probe.sh" <<'EOF'
#!/bin/bash
exec >/run/out/log 2>&1
fail() { echo "FAIL: $*"; echo "FAIL: $*" >/run/out/result; journalctl -u devicehooks --no-pager -o cat | tail -40; exit 1; }
T=$DEVICEHOOKS_ADMIN_TOKEN
api() { curl -fsS -H "Authorization: Bearer $T" "$@"; }
healthy() { for _ in $(seq 1 60); do curl -fsS localhost:8080/healthz >/dev/null 2>&1 && return 0; sleep 0.5; done; return 1; }

healthy || fail "no /healthz after 30 s"
echo "started: $(systemctl show devicehooks -p ActiveState --value)"
[ "$(stat -c '%U %a' /var/lib/devicehooks)" = "devicehooks 700" ] || fail "state directory: $(stat -c '%U %a' /var/lib/devicehooks)"
for f in /var/lib/devicehooks/*; do
	[ "$(stat -c '%U %a' "$f")" = "devicehooks 600" ] || fail "$f: $(stat -c '%U %a' "$f")"
done
echo "files: $(ls /var/lib/devicehooks | tr '\n' ' ')all devicehooks, 0600"
journalctl -u devicehooks --no-pager -o cat | grep -q 'First start' && fail "the first start printed a secret to the journal"

# (simulate reads the admin token from DEVICEHOOKS_ADMIN_TOKEN.)
/usr/local/bin/devicehooks simulate --players 2 --prefix-name check >/run/out/simulate 2>&1 &
simulate=$!
online() { [ "$(api localhost:8080/api/v1/devices | grep -o '"online":true' | wc -l)" -eq 2 ]; }
for _ in $(seq 1 60); do online && break; sleep 0.5; done
online || fail "the simulated players are not online after 30 s: $(cat /run/out/simulate)"
key=$(api -X POST localhost:8080/api/v1/api-keys -d '{"name":"check"}' | sed 's/.*"key":"\([^"]*\)".*/\1/')
event=$(api -X POST localhost:8080/api/v1/actions \
	-d '{"name":"check","function":"load_url","target":{"type":"all"},"params":{"url":"https://example.com"}}' |
	sed 's/.*"event_id":"\([^"]*\)".*/\1/')
answer=$(curl -fsS -X POST 'localhost:8080/public-api/integration/webhooks?wait=10' -H 'Content-Type: application/json' \
	-H "x-webhook-apikey: $key" -d "{\"event_id\":\"$event\"}") || fail "webhook"
echo "webhook: $answer"
[ "$(grep -o '"succeeded"' <<<"$answer" | wc -l)" -eq 2 ] || fail "the two simulated players did not ack: $answer"
kill $simulate

# As docs/operations.md says, with --pipe for --pty.
printf '%s\n' "another password of the check" |
	systemd-run --quiet --pipe --wait --collect -p User=devicehooks -p EnvironmentFile=/etc/devicehooks.env \
		-p Environment=DEVICEHOOKS_DB=/var/lib/devicehooks/devicehooks.db \
		/usr/local/bin/devicehooks reset-password || fail "reset-password as devicehooks"
for f in /var/lib/devicehooks/*; do
	[ "$(stat -c '%U' "$f")" = devicehooks ] || fail "after reset-password, $f is $(stat -c '%U' "$f")'s"
done

systemctl restart devicehooks
healthy || fail "no /healthz after a restart"
systemctl stop devicehooks
result="$(systemctl show devicehooks -p Result --value) $(systemctl show devicehooks -p ExecMainStatus --value)"
[ "$result" = "success 0" ] || fail "stop: $result"
journalctl -u devicehooks --no-pager -o cat | grep -q '"msg":"stopped"' || fail "no clean stop in the journal"
echo "restart and stop: clean"

exposure=$(systemd-analyze security devicehooks.service --no-pager | sed -n 's/.*Overall exposure level for devicehooks.service: \([0-9.]*\).*/\1/p')
echo "systemd-analyze security: exposure $exposure"
# One decimal, in tenths (awk, an alternatives link, is not in the empty /etc).
[[ "$exposure" =~ ^([0-9]+)\.([0-9])$ ]] && [ $((BASH_REMATCH[1] * 10 + BASH_REMATCH[2])) -le 20 ] ||
	fail "exposure $exposure (want at most 2.0)"
grep -E '"level":"(WARN|ERROR)"' <(journalctl -u devicehooks --no-pager -o cat) && fail "warnings or errors in the journal"
echo ok >/run/out/result
EOF
chmod +x "$tmp/probe.sh"

timeout -k 10 180 systemd-nspawn -D / --volatile=yes --register=no --keep-unit --private-network --quiet \
	--bind-ro="$tmp/bin:/usr/local/bin" \
	--bind-ro="$tmp/etc/passwd:/etc/passwd" --bind-ro="$tmp/etc/group:/etc/group" \
	--bind-ro="$tmp/etc/devicehooks.env:/etc/devicehooks.env" \
	--bind-ro="$PWD/examples/systemd/devicehooks.service:/etc/systemd/system/devicehooks.service" \
	--bind-ro="$tmp/probe.service:/etc/systemd/system/devicehooks-check.service" \
	--bind-ro="$tmp/probe.sh:/run/probe.sh" --bind="$tmp/out:/run/out" \
	-b --console=read-only -- systemd.firstboot=off \
	systemd.wants=devicehooks.service systemd.wants=devicehooks-check.service >"$tmp/console" 2>&1 || true

cat "$tmp/out/log" 2>/dev/null || { echo "check.sh: the container did not run the check; its console:"; cat "$tmp/console"; }
if [ "$(cat "$tmp/out/result" 2>/dev/null)" != ok ]; then
	echo "check.sh: FAILED"
	exit 1
fi
echo "check.sh: the unit works under $(systemd-nspawn --version | head -1)"
