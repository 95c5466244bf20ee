# Front door of mips-xip-kernel. Every target calls the `xip` command
# (TypeScript, Node 20); the logic lives there, not here.
#
#   make              install missing host tools, npm ci, build and assemble the image
#   make test         run the whole test suite
#   make help         list the targets

# Variables read by the xip command: BOARD CONFIG VARIANT TOOLCHAIN LOADER FLASH_MAP USERSPACE SETTINGS
# KERNEL_SRC KERNEL_TARBALL KERNEL_SHA256 LWRT_ROOTFS DEBIAN. Given on the command line
# (make VARIANT=stock) or in the environment, make passes them on to every
# recipe by itself; they are not defined here, so an unset variable stays
# unset (not exported as an empty string).

NODE ?= node
XIP  := $(NODE) bin/xip.mjs
# node_modules is (re)installed from the lock file when missing or older than it.
NODE_STAMP := node_modules/.package-lock.json
# src/ compiled to JavaScript (dist/, git-ignored), rebuilt when a source changes:
# bin/xip.mjs then skips loading TypeScript, and uses dist/ only while it is
# newer than every file under src/ (else it runs the sources through tsx).
DIST_STAMP := dist/.stamp
TS_SOURCES := $(shell find src -name '*.ts')

.DEFAULT_GOAL := all
.PHONY: all deps source kernel flashmap image verify series boot test run soak bench size size-report fresh-check clean distclean help check-deps

all: deps kernel image ## install what is missing, build the kernel, assemble the flash image

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund

# Transpiled only (noCheck): type errors are for `npm run typecheck`, as with tsx.
# The stamp is taken before the compile, so a source edited meanwhile is newer.
$(DIST_STAMP): $(TS_SOURCES) tsconfig.json tsconfig.build.json $(NODE_STAMP)
	@rm -rf dist.tmp && mkdir dist.tmp && touch dist.tmp/.stamp
	$(NODE) node_modules/typescript/bin/tsc -p tsconfig.build.json --outDir dist.tmp
	@rm -rf dist && mv dist.tmp dist

# doctor exits non-zero when something is missing; only then install.
check-deps: $(DIST_STAMP)
	@$(XIP) doctor >/dev/null 2>&1 || $(XIP) doctor --install

deps: check-deps ## install missing host tools (apt-get) and npm packages

source: $(DIST_STAMP) ## unpack and patch the kernel source under build/src
	$(XIP) source

kernel: $(DIST_STAMP) ## build userspace and the kernel (VARIANT=xip|stock, TOOLCHAIN=clang|gcc|llvm, LOADER=shim|uboot|uboot-stock|vendor)
	$(XIP) build

flashmap: $(DIST_STAMP) ## print the flash partition map of the board and loader (LOADER=shim|uboot|uboot-stock|vendor, FLASH_MAP=file.json)
	$(XIP) flashmap

image: $(DIST_STAMP) ## assemble the whole flash chip's image build/out/xip-bios.bin (loader, kernel, partitions); a real board: build/out/<board>-kernel-partition.bin
	$(XIP) image

verify: $(DIST_STAMP) ## check the XIP vmlinux and flash image layout
	$(XIP) verify

series: $(DIST_STAMP) ## the kernel patch series with your identity, in build/series (FROM='Name <you@example.org>')
	$(XIP) series --from "$(FROM)"

boot: $(DIST_STAMP) ## boot the built kernel in QEMU and check markers and power-off
	$(XIP) boot

run: $(DIST_STAMP) ## boot the built kernel in QEMU interactively (Ctrl-A X quits)
	$(XIP) run

soak: $(DIST_STAMP) ## boot the XIP image COUNT times in a row (default 50): failures and boot-time spread
	$(XIP) --variant xip build && $(XIP) --variant xip image && $(XIP) --variant xip soak $(if $(COUNT),--count $(COUNT))

# The suite checks the XIP build and its image too (xip verify on a real
# kernel): build them first (a no-op when up to date). The stock baseline is
# built and booted by test/integration-stock.test.ts itself. Then the lint
# (npm run lint: typescript-eslint's promise rules), then the suite. When the
# XIP build or the lint fails the suite still runs (its report says what is
# affected), and make test fails either way.
test: check-deps ## install what is missing, build the XIP kernel and image, lint, then run the whole test suite
	@$(XIP) doctor --browser >/dev/null 2>&1 || $(XIP) doctor --browser --install
	@rc=0; { $(XIP) --variant xip build && $(XIP) --variant xip image; } || rc=$$?; \
	lint=0; npm run --silent lint || lint=$$?; \
	$(NODE) --import tsx --import ./test/setup.ts --test --test-reporter=spec test/*.test.ts || exit $$?; \
	if [ $$rc != 0 ]; then echo "make test: the XIP build failed (exit $$rc), see above" >&2; fi; \
	if [ $$lint != 0 ]; then echo "make test: the lint failed (exit $$lint), see above" >&2; [ $$rc != 0 ] || rc=$$lint; fi; \
	exit $$rc

# Needs root (debootstrap, chroot, mounts); tests the committed HEAD, not uncommitted changes.
fresh-check: $(DIST_STAMP) ## make + make test in a new Debian root (DEBIAN=12|13, default 13)
	@$(XIP) doctor --fresh-check >/dev/null 2>&1 || $(XIP) doctor --fresh-check --install
	$(XIP) fresh-check --debian $(or $(DEBIAN),13)

# Slow (several minutes per config; the build timing does a clean build in a
# fresh clone): not part of make test. BENCH_BUILD_TIME=0 skips the build timing.
bench: $(DIST_STAMP) ## measure XIP against stock (minimal + router configs): bench/results-*.json and the README results
	$(XIP) bench $(if $(filter 0 no false,$(BENCH_BUILD_TIME)),--no-build-time)

size: $(DIST_STAMP) ## where flash and RAM go: by region, subsystem, object file, symbol, rootfs file (xip size)
	$(XIP) size

# The page is self-contained (d3-hierarchy inlined): open it from disk, no server needed.
size-report: $(DIST_STAMP) ## the HTML size report with treemaps of flash and RAM: build/out/size-report.html
	$(XIP) report --html

clean: ## remove the kernel builds and images (keeps the prepared kernel source)
	@[ ! -d build ] || find build -mindepth 1 -maxdepth 1 ! -name src ! -name .xip-hashcache.json -exec rm -rf {} +

distclean: ## remove build/ entirely, node_modules and dist
	rm -rf build node_modules dist dist.tmp

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## (.*)/  \1\t\2/' | expand -t 14
	@echo 'Variables: BOARD CONFIG VARIANT TOOLCHAIN LOADER FLASH_MAP USERSPACE SETTINGS KERNEL_SRC KERNEL_TARBALL KERNEL_SHA256 LWRT_ROOTFS DEBIAN'
