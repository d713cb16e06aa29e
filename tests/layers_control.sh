#!/bin/sh
# layers_control.sh LAYERS_SH ENGINE_DIR LINE -- a negative control of
# layers.sh: a copy of the engine with LINE (an #include) added to
# core/unit.h must fail it (meson: should_fail).
set -eu
layers=${1:?usage: layers_control.sh LAYERS_SH ENGINE_DIR LINE}
src=${2:?}
line=${3:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for d in "$src"/*/; do
    mkdir "$tmp/$(basename "$d")"
    cp "$d"*.[ch] "$tmp/$(basename "$d")/"
done
printf "%s\n" "$line" >> "$tmp/core/unit.h"
sh "$layers" "$tmp"
