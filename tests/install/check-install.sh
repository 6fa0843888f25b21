#!/usr/bin/env bash
# check-install.sh: `make install` into a temporary DESTDIR (PREFIX=/usr/local,
# then PREFIX=/opt/kvfpga), then, against the installed tree only:
#   - the files, modes, symlink chain and soname; test-only tools absent;
#   - one version everywhere (Makefile, kvfpga.h, kvfpga.pc, driver/Kbuild,
#     dkms.conf, CHANGELOG.md);
#   - each installed header compiles alone (C11 -Werror -pedantic, and C++);
#   - tests/install/consumer.c built with `pkg-config --cflags --libs kvfpga`
#     (PKG_CONFIG_PATH and PKG_CONFIG_SYSROOT_DIR into the DESTDIR) runs
#     against the installed libkvfpga.so, and again linked with the static
#     archive using `pkg-config --static`: buffers on the emulation and one
#     attention built from the installed kernel source;
#   - each installed tool runs --help; each man page renders without a groff
#     warning and names every long option its tool's --help names (and no
#     other); libkvfpga(3) names every function of the installed headers;
#   - `make uninstall` leaves no file behind.
# Run by `make check-install` (MAKE, BUILD, KVFPGA_VERSION, INSTALL_TOOLS
# come from mk/install.mk).  Prints one line per check; exits 1 on failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
MAKE=${MAKE:-make}
BUILD=${BUILD:-build}
: "${KVFPGA_VERSION:?set by mk/install.mk}"
: "${INSTALL_TOOLS:?set by mk/install.mk}"
CC=${CC:-cc}
CXX=${CXX:-c++}

tmp=$(mktemp -d /tmp/kvfpga-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failures=0
ok() { echo "check-install: ok   $*"; }
bad() {
	echo "check-install: FAIL $*" >&2
	failures=$((failures + 1))
}
expect() { # NAME CMD...: ok when CMD succeeds, else FAIL with its output
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then ok "$name"; else bad "$name: $(tail -n 5 <<<"$out" | tr '\n' ' ')"; fi
}

# Long options a text names (--foo, --foo-bar), one per line, sorted.
long_opts() { grep -oE -- '--[a-z][a-z0-9-]*[a-z0-9]' | sort -u; }

check_versions() {
	local pc_version header kbuild dkms
	pc_version=$(pkg-config --modversion kvfpga)
	# shellcheck disable=SC2046 # the flags are words
	header=$(printf '#include <kvfpga/kvfpga.h>\nKVFPGA_VERSION_MAJOR.KVFPGA_VERSION_MINOR.KVFPGA_VERSION_PATCH\n' |
		$CC -E -P $(pkg-config --cflags kvfpga) -x c - | tail -n 1 | tr -d ' ')
	kbuild=$(sed -nE 's/.*-DKVFPGA_VERSION=\\"([^"\\]*)\\".*/\1/p' driver/Kbuild)
	dkms=$(sed -nE 's/^PACKAGE_VERSION="([^"]*)"/\1/p' dkms.conf)
	if [ "$pc_version" = "$KVFPGA_VERSION" ] && [ "$header" = "$KVFPGA_VERSION" ] &&
		[ "$kbuild" = "$KVFPGA_VERSION" ] && [ "$dkms" = "$KVFPGA_VERSION" ] &&
		grep -qE "^## \[?$KVFPGA_VERSION\]?" CHANGELOG.md; then
		ok "one version $KVFPGA_VERSION (Makefile, kvfpga.h, kvfpga.pc, driver/Kbuild, dkms.conf, CHANGELOG.md)"
	else
		bad "versions differ: Makefile $KVFPGA_VERSION, kvfpga.h $header, kvfpga.pc $pc_version, driver/Kbuild $kbuild, dkms.conf $dkms (and CHANGELOG.md needs a '## $KVFPGA_VERSION' section)"
	fi
}

check_tree() { # dest prefix
	local dest=$1 prefix=$2 lib=$1$2/lib missing=() f t
	for f in "$lib/libkvfpga.so.$KVFPGA_VERSION" "$lib/libkvfpga.a" "$lib/pkgconfig/kvfpga.pc" \
		"$dest$prefix/include/drm/kvfpga_accel.h" "$dest$prefix/share/man/man3/libkvfpga.3" \
		"$dest$prefix/share/doc/kvfpga/CHANGELOG.md"; do
		[ -f "$f" ] || missing+=("$f")
	done
	for f in include/kvfpga/*.h; do
		[ -f "$dest$prefix/include/kvfpga/$(basename "$f")" ] || missing+=("$f")
	done
	for f in hw/kernels/*.cl; do
		[ -f "$dest$prefix/share/kvfpga/kernels/$(basename "$f")" ] || missing+=("$f")
	done
	for t in $INSTALL_TOOLS; do
		[ -x "$dest$prefix/bin/$t" ] || missing+=("bin/$t")
		[ -f "$dest$prefix/share/man/man1/$t.1" ] || missing+=("man1/$t.1")
	done
	case "$prefix" in
	/usr | /usr/local) f=$dest$prefix/lib ;;
	*) f=$dest/etc ;;
	esac
	[ -f "$f/udev/rules.d/72-kvfpga.rules" ] || missing+=("$f/udev/rules.d/72-kvfpga.rules")
	grep -qx 'g kvfpga - - -' "$f/sysusers.d/kvfpga.conf" 2>/dev/null || missing+=("$f/sysusers.d/kvfpga.conf")
	if [ ${#missing[@]} -eq 0 ]; then ok "$prefix: every file installed"; else bad "$prefix: missing ${missing[*]}"; fi
	# The group file as systemd-sysusers reads it, applied to a copy of /etc.
	mkdir -p "$tmp/sysusers-root/etc"
	cp /etc/group /etc/passwd "$tmp/sysusers-root/etc/"
	sed -i '/^kvfpga:/d' "$tmp/sysusers-root/etc/group"
	if systemd-sysusers --root="$tmp/sysusers-root" "$f/sysusers.d/kvfpga.conf" >"$tmp/sysusers.log" 2>&1 &&
		grep -q '^kvfpga:x:[0-9]*:$' "$tmp/sysusers-root/etc/group"; then
		ok "$prefix: systemd-sysusers creates the kvfpga group from the installed file"
	else
		bad "$prefix: systemd-sysusers: $(tr '\n' ' ' <"$tmp/sysusers.log")"
	fi
	rm -rf "$tmp/sysusers-root"

	if [ "$(readlink "$lib/libkvfpga.so")" = libkvfpga.so.0 ] &&
		[ "$(readlink "$lib/libkvfpga.so.0")" = "libkvfpga.so.$KVFPGA_VERSION" ] &&
		[[ $(readelf -d "$lib/libkvfpga.so.$KVFPGA_VERSION") == *'Library soname: [libkvfpga.so.0]'* ]]; then
		ok "$prefix: libkvfpga.so -> libkvfpga.so.0 -> libkvfpga.so.$KVFPGA_VERSION, soname libkvfpga.so.0"
	else
		bad "$prefix: symlink chain or soname wrong: $(find "$lib" -name 'libkvfpga.so*' -printf '%p -> %l ' 2>&1)"
	fi
	t=$(find "$dest" \( -type f -o -type d \) \( -perm -o+w -o \( -type f ! -perm -o+r \) \) -print)
	if [ -z "$t" ]; then ok "$prefix: no world-writable or unreadable file"; else bad "$prefix: bad modes: $t"; fi
	t=""
	for f in kvfpga-mkcard kvfpga-genmodel; do
		[ ! -e "$dest$prefix/bin/$f" ] || t="$t $f"
	done
	if [ -z "$t" ]; then ok "$prefix: test-only tools not installed"; else bad "$prefix: installed$t"; fi
}

check_headers() { # cflags...
	local h name
	for h in $(cd include && ls kvfpga/*.h) drm/kvfpga_accel.h; do
		name="header <$h> compiles alone (C11 -pedantic -Werror, C++)"
		if printf '#include <%s>\n' "$h" | $CC -std=c11 -Wall -Wextra -Werror -pedantic \
			-Wstrict-prototypes -fsyntax-only "$@" -x c - >"$tmp/hdr.log" 2>&1 &&
			printf '#include <%s>\n' "$h" | $CXX -Wall -Wextra -Werror -fsyntax-only "$@" \
				-x c++ - >>"$tmp/hdr.log" 2>&1; then
			ok "$name"
		else
			bad "$name: $(head -n 3 "$tmp/hdr.log" | tr '\n' ' ')"
		fi
	done
}

check_consumer() { # dest prefix
	local dest=$1 prefix=$2 cflags libs static kernels lib=$1$2/lib
	cflags=$(pkg-config --cflags kvfpga)
	libs=$(pkg-config --libs kvfpga)
	kernels=$(pkg-config --variable=kernelsdir kvfpga)
	case "$cflags $libs" in
	*"$dest$prefix/include"*"$dest$prefix/lib"*) ok "$prefix: pkg-config points into the DESTDIR: $cflags $libs" ;;
	*) bad "$prefix: pkg-config gives '$cflags $libs'" ;;
	esac
	expect "$prefix: kvfpga.pc validates" pkg-config --validate kvfpga
	# shellcheck disable=SC2086 # the flags are words
	check_headers $cflags

	# shellcheck disable=SC2086
	if $CC -std=c11 -Wall -Wextra -Werror -o "$tmp/consumer" tests/install/consumer.c $cflags $libs -lm \
		>"$tmp/cc.log" 2>&1; then
		ok "$prefix: consumer builds with pkg-config --cflags --libs kvfpga"
	else
		bad "$prefix: consumer does not build: $(head -n 5 "$tmp/cc.log" | tr '\n' ' ')"
		return
	fi
	# (grep -q on a pipe could end ldd with SIGPIPE, a failure under pipefail)
	if [[ $(LD_LIBRARY_PATH=$lib ldd "$tmp/consumer") == *"libkvfpga.so.0 => $lib/libkvfpga.so.0 "* ]]; then
		ok "$prefix: consumer loads the installed libkvfpga.so.0"
	else
		bad "$prefix: consumer does not load $lib/libkvfpga.so.0: $(LD_LIBRARY_PATH=$lib ldd "$tmp/consumer" | grep kvfpga)"
	fi
	expect "$prefix: consumer runs on the installed library and kernel source" \
		env LD_LIBRARY_PATH="$lib" KVFPGA_DEVICE= "$tmp/consumer" "$kernels/kvfpga_attention.cl"

	# Static: Libs.private must name everything the archive needs.
	static=$(pkg-config --static --libs kvfpga | sed 's/-lkvfpga\b/-l:libkvfpga.a/')
	# shellcheck disable=SC2086
	if $CC -std=c11 -o "$tmp/consumer-static" tests/install/consumer.c $cflags $static -lm \
		>"$tmp/cc.log" 2>&1 && [[ $(ldd "$tmp/consumer-static") != *libkvfpga* ]]; then
		ok "$prefix: consumer links the static archive with pkg-config --static --libs kvfpga"
		expect "$prefix: statically linked consumer runs" env KVFPGA_DEVICE= "$tmp/consumer-static" \
			"$kernels/kvfpga_attention.cl"
	else
		bad "$prefix: static link failed: $(head -n 5 "$tmp/cc.log" | tr '\n' ' ')"
	fi
}

check_tools_and_man() { # dest prefix
	local dest=$1 prefix=$2 t page help_opts man_opts warn
	for t in $INSTALL_TOOLS; do
		page=$dest$prefix/share/man/man1/$t.1
		if ! help_text=$("$dest$prefix/bin/$t" --help 2>&1); then
			bad "$prefix: $t --help failed: $help_text"
			continue
		fi
		[ -f "$page" ] || continue # reported by check_tree
		warn=$(groff -man -ww -z -Tutf8 "$page" 2>&1 || true)
		help_opts=$(long_opts <<<"$help_text")
		man_opts=$(MANWIDTH=200 man -l "$page" 2>/dev/null | col -b | long_opts)
		if [ -z "$warn" ] && [ "$help_opts" = "$man_opts" ]; then
			ok "$prefix: $t(1) renders cleanly and matches $t --help ($(wc -l <<<"$help_opts") long options)"
		else
			bad "$prefix: $t(1): ${warn:+groff: $warn; }only in --help: $(comm -23 <(echo "$help_opts") <(echo "$man_opts") | tr '\n' ' ')only in the man page: $(comm -13 <(echo "$help_opts") <(echo "$man_opts") | tr '\n' ' ')"
		fi
	done

	page=$dest$prefix/share/man/man3/libkvfpga.3
	warn=$(groff -man -ww -z -Tutf8 "$page" 2>&1 || true)
	local funcs unnamed=""
	funcs=$(cat "$dest$prefix"/include/kvfpga/*.h | grep -oE '\bkvfpga_[a-z0-9_]+\(' | tr -d '(' | sort -u)
	for f in $funcs; do
		grep -qw -- "$f" "$page" || unnamed="$unnamed $f"
	done
	if [ -z "$warn" ] && [ -z "$unnamed" ]; then
		ok "$prefix: libkvfpga(3) renders cleanly and names all $(wc -w <<<"$funcs") public functions"
	else
		bad "$prefix: libkvfpga(3): ${warn:+groff: $warn; }not named:$unnamed"
	fi
}

check_uninstall() { # dest prefix
	local dest=$1 prefix=$2 left
	"$MAKE" --no-print-directory -s uninstall DESTDIR="$dest" PREFIX="$prefix" BUILD="$BUILD" >/dev/null
	left=$(find "$dest" ! -type d)
	if [ -z "$left" ]; then ok "$prefix: make uninstall leaves no file"; else bad "$prefix: left behind: $left"; fi
}

check_versions_done=0
for prefix in /usr/local /opt/kvfpga; do
	dest=$tmp/dest${prefix//\//-}
	if ! "$MAKE" --no-print-directory -s install DESTDIR="$dest" PREFIX="$prefix" BUILD="$BUILD" \
		>"$tmp/install.log" 2>&1; then
		bad "$prefix: make install failed: $(tail -n 5 "$tmp/install.log" | tr '\n' ' ')"
		continue
	fi
	ok "$prefix: make install DESTDIR=$dest"
	check_tree "$dest" "$prefix"

	export PKG_CONFIG_PATH=$dest$prefix/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest
	# A sysroot holds the dependencies too: pkg-config prefixes libdrm's
	# -I/usr/include/libdrm (which has the drm.h <drm/kvfpga_accel.h>
	# includes) with the sysroot, so the host's copy is linked in for the build.
	mkdir -p "$dest/usr/include"
	ln -s /usr/include/libdrm "$dest/usr/include/libdrm"
	if [ $check_versions_done -eq 0 ]; then
		check_versions
		check_versions_done=1
	fi
	check_consumer "$dest" "$prefix"
	rm "$dest/usr/include/libdrm"
	unset PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
	check_tools_and_man "$dest" "$prefix"
	check_uninstall "$dest" "$prefix"
done

# Unprivileged: no udev rule, no group file, everything else under PREFIX.
dest=$tmp/dest-user prefix=/home/user/.local
if "$MAKE" --no-print-directory -s install DESTDIR="$dest" PREFIX="$prefix" BUILD="$BUILD" \
	UDEVRULESDIR= SYSUSERSDIR= >"$tmp/install.log" 2>&1 &&
	[ -z "$(find "$dest" ! -path "$dest$prefix/*" ! -type d)" ] &&
	[ -z "$(find "$dest" -name '*-kvfpga.rules' -o -name kvfpga.conf)" ] &&
	[ -f "$dest$prefix/lib/libkvfpga.so.$KVFPGA_VERSION" ]; then
	ok "$prefix with UDEVRULESDIR= SYSUSERSDIR=: everything under PREFIX, no udev rule or group file"
else
	bad "$prefix with UDEVRULESDIR= SYSUSERSDIR=: $(tail -n 3 "$tmp/install.log" | tr '\n' ' ') $(find "$dest" ! -type d ! -path "$dest$prefix/*" | head -n 3)"
fi
"$MAKE" --no-print-directory -s uninstall DESTDIR="$dest" PREFIX="$prefix" BUILD="$BUILD" \
	UDEVRULESDIR= SYSUSERSDIR= >/dev/null 2>&1 || true
if [ -z "$(find "$dest" ! -type d)" ]; then ok "$prefix: uninstall leaves no file"; else bad "$prefix: uninstall left $(find "$dest" ! -type d | head -n 3)"; fi

if [ $failures -ne 0 ]; then
	echo "check-install: $failures check(s) failed" >&2
	exit 1
fi
echo "check-install: all checks passed"
