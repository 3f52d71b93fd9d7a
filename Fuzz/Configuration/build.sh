#!/bin/sh
# Builds the libFuzzer harness for agent.toml into .build-fuzz/configuration-fuzzer.
# TOMLKit is built from the checkout `swift build` resolved (.build/checkouts/TOMLKit): its C++ part
# (toml++) with coverage and ASan, its Swift part as an instrumented module. The agent's
# configuration code is compiled into the harness with the little it needs (the error type, the file
# system wrapper over LinuxSystem, DurationText and the model as a small Artifact module,
# AgentProtocol). Nothing here is part of `swift build`.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/.build-fuzz"
work="$out/configuration-modules"
tomlkit="$root/.build/checkouts/TOMLKit/Sources"
[ -d "$tomlkit" ] || (cd "$root" && swift package resolve)
mkdir -p "$work"
# TOML_ASSERTS=off builds toml++ as the .deb ships it (packaging/build-deb: assertions are no-ops),
# to fuzz past its assertion failures into the agent's own code; the default keeps them, as
# `swift build` does.
toml_assert=""
[ "${TOML_ASSERTS:-on}" = off ] && toml_assert='-DTOML_ASSERT(expr)=static_cast<void>(0)'
if [ "$(cat "$work/toml-asserts" 2>/dev/null)" != "${TOML_ASSERTS:-on}" ]; then rm -f "$work"/ctoml-*.o; fi
echo "${TOML_ASSERTS:-on}" > "$work/toml-asserts"
. "$root/Fuzz/modules.sh"
extra_includes="-I $tomlkit/CTOML/include/CTOML"
for source in "$tomlkit"/CTOML/Sources/*.cpp; do
    object="$work/ctoml-$(basename "$source" .cpp | tr -c 'A-Za-z0-9\n' '_').o"
    # shellcheck disable=SC2086
    [ "$object" -nt "$source" ] || clang++ -std=c++17 -w -DTOML_EXCEPTIONS=1 ${toml_assert:+"$toml_assert"} -fsanitize=fuzzer-no-link,address \
        -O1 -g -I "$tomlkit/CTOML/include" -c "$source" -o "$object"
done
# TOMLKit's folders have spaces in their names: link its (uniquely named) sources into one folder.
mkdir -p "$work/tomlkit-sources"
find "$tomlkit/TOMLKit" -name '*.swift' -exec ln -sf {} "$work/tomlkit-sources/" \;
# TOMLKit's package declares tools version 5.4: Swift 5 language mode, as SwiftPM builds it.
module TOMLKit 5 "$work"/tomlkit-sources/*.swift
linux_system_module
module Artifact 6 "$root/Sources/Artifact/Channel/DurationText.swift" "$root/Sources/Artifact/Channel/ChannelPath.swift" \
    "$root/Sources/Artifact/Model/Hotpatch.swift"
module AgentProtocol 6 "$root"/Sources/AgentProtocol/*.swift
core="$root/Sources/AgentCore"
harness ConfigurationFuzz "$out/configuration-fuzzer" "$root/Fuzz/Configuration/ConfigurationFuzzer.swift" \
    "$core"/Config/*.swift "$core/AgentCoreError.swift" "$core/State/FileSystem.swift" "$core/State/AgentState.swift" \
    "$work"/ctoml-*.o -lstdc++
echo "built $out/configuration-fuzzer"
