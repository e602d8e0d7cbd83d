#!/bin/sh
# Fails when library or tool code uses a banned function (STYLE: no strtok,
# atoi, sprintf, strcpy, strcat, gets, and no <ctype.h> on wire data).
cd "$(dirname "$0")/.." || exit 2
hits=$(grep -nE '\b(strtok|atoi|atol|sprintf|vsprintf|strcpy|strcat|gets)\s*\(|#include <ctype\.h>' \
    src/core/*/*.c src/core/*/*.h apps/*/*.c include/csip/*.h 2>/dev/null | grep -v 'snprintf')
if [ -n "$hits" ]; then
    echo "banned functions:"; echo "$hits"; exit 1
fi
echo "1 passed, 0 failed"
