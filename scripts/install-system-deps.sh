#!/usr/bin/env bash
# Debian packages clinflow uses at run time: tesseract-ocr (OCR of scanned pages), and
# chromium (the headless-browser test of the Temporal UI through the codec server).
# Installs them when running as root and they are missing; otherwise says how.
set -euo pipefail

missing=()
command -v tesseract >/dev/null 2>&1 || missing+=(tesseract-ocr)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "missing system packages: ${missing[*]}" >&2
    echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
    echo "(OCR tests are skipped until tesseract is on PATH, browser tests until chromium is)" >&2
fi
