#!/usr/bin/env bash
# Build dist/zhugeleida: one executable file holding the Python interpreter, every dependency, the default
# config.yaml and what ships under statics/ (the console), never uploaded pictures (statics/zhugeleida/).
# Run through `make dist`, which installs requirements-dist.txt into .venv first.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
python=${PYTHON:-$root/.venv/bin/python}
work=$root/build/dist

rm -rf "$work" dist/zhugeleida
mkdir -p "$work/statics" dist
if [ -d statics ]; then
    tar -C statics --exclude=./zhugeleida -cf - . | tar -C "$work/statics" -xf -
fi

"$python" -m PyInstaller --noconfirm --clean --log-level WARN --onefile --strip --name zhugeleida \
    --distpath "$root/dist" --workpath "$work/pyinstaller" --specpath "$work" \
    --add-data "$root/config.yaml:." \
    --add-data "$work/statics:statics" \
    --hidden-import tzdata --collect-data tzdata \
    --hidden-import services.legacy_import --hidden-import pymysql \
    --exclude-module tkinter --exclude-module pytest --exclude-module hypothesis \
    "$root/server.py"

echo "built dist/zhugeleida: $(stat -c %s dist/zhugeleida) bytes ($(./dist/zhugeleida --version))"
