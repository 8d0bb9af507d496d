# Makefile - the front door: `make run`, `make test`, `make bench`. Meson does the building.
.PHONY: all build build-san build-fuzz run test bench clean format

all: build

build/build.ninja:
	meson setup build --buildtype=debugoptimized -Dtests=enabled

# The binaries land in build/ itself: build/aeid and build/aei.
build: build/build.ninja
	ninja -C build
	ln -sf src/server/aeid build/aeid
	ln -sf src/cli/aei build/aei

build-san/build.ninja:
	meson setup build-san --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false -Dtests=enabled

build-san: build-san/build.ninja
	ninja -C build-san
	ln -sf src/server/aeid build-san/aeid
	ln -sf src/cli/aei build-san/aei

build-fuzz/build.ninja:
	CC=clang meson setup build-fuzz --buildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false -Dtests=disabled -Dfuzz=enabled

build-fuzz: build-fuzz/build.ninja
	ninja -C build-fuzz

run:
	scripts/bootstrap.sh
	$(MAKE) build
	scripts/run.sh

test:
	scripts/bootstrap.sh
	scripts/test.sh

# Suites of `make bench`, in this order: ingest (scripts/bench.sh), hub (scripts/bench-hub.sh),
# traces (scripts/bench-traces.sh), export (scripts/bench-export.sh), retention
# (scripts/bench-retention.sh), audit (scripts/bench-audit.sh), actions (scripts/bench-actions.sh),
# dashboard (scripts/bench-dashboard.sh), trace-view (scripts/bench-trace-view.sh) and soak
# (scripts/bench-soak.sh, ten minutes).
BENCH_SUITES ?= ingest hub traces export retention audit actions dashboard trace-view soak

bench:
	scripts/bootstrap.sh
	$(MAKE) build
	@status=0; for suite in $(BENCH_SUITES); do \
	    case $$suite in \
	    ingest) scripts/bench.sh || status=1 ;; \
	    hub) scripts/bench-hub.sh || status=1 ;; \
	    traces) scripts/bench-traces.sh || status=1 ;; \
	    export) scripts/bench-export.sh || status=1 ;; \
	    retention) scripts/bench-retention.sh || status=1 ;; \
	    audit) scripts/bench-audit.sh || status=1 ;; \
	    actions) scripts/bench-actions.sh || status=1 ;; \
	    trace-view) scripts/bench-trace-view.sh || status=1 ;; \
	    soak) scripts/bench-soak.sh || status=1 ;; \
	    dashboard) scripts/bench-dashboard.sh || status=1 ;; \
	    *) echo "make bench: unknown suite '$$suite' in BENCH_SUITES; use ingest, hub, traces, export, retention, audit, actions, dashboard, trace-view, soak" >&2; \
	       status=1 ;; \
	    esac; \
	done; exit $$status

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-san build-fuzz
