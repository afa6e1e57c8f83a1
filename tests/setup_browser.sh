#!/usr/bin/env bash
# Puts a headless Chromium for tests/test_lab_browser.py in OUT (default build/chromium), without root, and writes
# OUT/headless-shell, the launcher the test starts (it reads $AVAE_CHROMIUM first, then this launcher).
#
#   bash tests/setup_browser.sh [OUT [PYTHON]]
#
# Where a Chromium headless shell is already installed (Debian's chromium-headless-shell), the launcher runs it.
# Otherwise, on Debian-like systems: `apt-get download` of chromium-headless-shell and of the packages it needs that the
# system lacks (those `apt-get install --simulate` would install), unpacked with `dpkg -x` under OUT (~100 MB of
# downloads, ~300 MB unpacked); the launcher sets LD_LIBRARY_PATH to the unpacked libraries. Elsewhere: Playwright's own
# build, `PYTHON -m playwright install chromium-headless-shell` (PYTHON defaults to .venv/bin/python).
set -euo pipefail
out=${1:-build/chromium}
python=${2:-.venv/bin/python}
mkdir -p "$out"
out=$(cd "$out" && pwd)
launcher=$out/headless-shell

write_launcher() {  # write_launcher BINARY [LD_LIBRARY_PATH]
    {
        echo '#!/bin/sh'
        echo "# written by tests/setup_browser.sh"
        [ -n "${2:-}" ] && echo "export LD_LIBRARY_PATH='$2'\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
        echo "exec '$1' \"\$@\""
    } > "$launcher.tmp"
    chmod +x "$launcher.tmp"
    if ! "$launcher.tmp" --version; then
        echo "setup_browser: $1 does not start (see above)" >&2
        exit 1
    fi
    mv "$launcher.tmp" "$launcher"
    echo "setup_browser: $launcher -> $1"
}

if [ -x "$launcher" ] && "$launcher" --version >/dev/null 2>&1; then
    echo "setup_browser: $launcher is there ($("$launcher" --version))"
    exit 0
fi

for system in /usr/lib/chromium/chromium-headless-shell /usr/bin/chromium-headless-shell; do
    if [ -x "$system" ]; then write_launcher "$system"; exit 0; fi
done

if command -v apt-get >/dev/null && command -v dpkg >/dev/null; then
    packages() {  # what `apt-get install` would add for chromium-headless-shell, without installing it
        apt-get --simulate -o Debug::NoLocking=1 install --no-install-recommends chromium-headless-shell \
            | awk '/^Inst /{print $2}'
    }
    sandbox=()
    [ "$(id -u)" = 0 ] && sandbox=(-o APT::Sandbox::User=root)  # _apt cannot write into OUT
    rm -rf "$out/debs" "$out/root"
    mkdir -p "$out/debs" "$out/root"
    if ! pkgs=$(packages) || [ -z "$pkgs" ] || ! (cd "$out/debs" && apt-get download "${sandbox[@]}" $pkgs); then
        if [ "$(id -u)" = 0 ]; then
            echo "setup_browser: refreshing the package lists (apt-get update)" >&2
            apt-get update -qq
            pkgs=$(packages)
            (cd "$out/debs" && apt-get download "${sandbox[@]}" $pkgs)
        else
            echo "setup_browser: apt-get download chromium-headless-shell failed; run 'sudo apt-get update' and retry," \
                 "or install Debian's chromium-headless-shell, or point AVAE_CHROMIUM at a Chromium headless shell" >&2
            exit 1
        fi
    fi
    for deb in "$out"/debs/*.deb; do dpkg -x "$deb" "$out/root"; done
    rm -rf "$out/debs"
    binary=$out/root/usr/lib/chromium/chromium-headless-shell
    libs=$(find "$out/root" \( -name '*.so' -o -name '*.so.*' \) -printf '%h\n' | sort -u | paste -sd:)
    missing=$(LD_LIBRARY_PATH=$libs ldd "$binary" | grep 'not found' || true)
    if [ -n "$missing" ]; then
        echo "setup_browser: $binary still lacks shared libraries:" >&2
        echo "$missing" >&2
        exit 1
    fi
    write_launcher "$binary" "$libs"
    exit 0
fi

"$python" -m playwright install chromium-headless-shell
binary=$(find "${PLAYWRIGHT_BROWSERS_PATH:-$HOME/.cache/ms-playwright}" -type f \
         \( -name headless_shell -o -name chrome-headless-shell \) -perm -u+x | sort | tail -1)
[ -n "$binary" ] || { echo "setup_browser: playwright installed no headless shell" >&2; exit 1; }
write_launcher "$binary"
