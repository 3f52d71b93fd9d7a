# Packaging entry points. Building and testing the code itself: swift build / scripts/test (README).
#
#   make deb        dist/hotpatch-agent_<version>_<arch>.deb (hosts: agent, agentctl) and
#                   dist/hotpatch-pack_<version>_<arch>.deb (publishers: hotpatch-pack)
#                   (packaging/build-deb: installs the Debian build tools when missing, builds the
#                   release binaries, runs dpkg-buildpackage and lintian)
#   make verify     systemd-analyze verify and security on the unit, against the built package
#   make clean      remove dist/ and the packaging build trees
#
# The version has one source: HotpatchAgent.version in Sources/Agent/HotpatchAgent.swift.

VERSION := $(shell sed -n 's/^ *static let version = "\([^"]*\)".*/\1/p' Sources/Agent/HotpatchAgent.swift)
ARCH := $(shell dpkg --print-architecture 2>/dev/null)
DEB := dist/hotpatch-agent_$(VERSION)_$(ARCH).deb

.PHONY: all deb verify clean version

all: deb

deb:
	packaging/build-deb

version:
	@echo $(VERSION)

verify:
	packaging/verify-unit $(DEB)

clean:
	rm -rf dist .build-deb .build-verify
