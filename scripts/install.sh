#!/usr/bin/env bash
# Installs cell as a service, or removes it again.
#
#   scripts/install.sh [--from DIR]           install (as root)
#   scripts/install.sh --uninstall [--purge]  remove what the install put there
#
# What it installs, each path under $DESTDIR:
#   $PREFIX/bin/cell, $PREFIX/bin/celld      from DIR, or a release build
#   $CNI_BIN_DIR/cell-cni                    when DIR has that binary
#   completions for bash, zsh and fish       when `cell completion SHELL` exists
#   man pages in $PREFIX/share/man           when `cell man DIR` exists
#   $UNITDIR/celld.service                   ExecStart pointing at the celld above
#   $SYSCONFDIR/cell/celld.toml              the documented default; an existing
#                                            one is kept as it is
#   $PREFIX/share/cell/install-manifest      what was installed, for --uninstall
#
# --uninstall removes the files the manifest names and the directories the
# install created (when empty). The configuration goes too, unless it was
# changed since; the state in $STATE_DIR (images, containers) stays.
# --purge removes both as well, and refuses while anything is mounted under
# $STATE_DIR (a running container's root file system, its network namespace).
#
# Environment (defaults in brackets): PREFIX [/usr/local], DESTDIR [empty:
# the real /], SYSCONFDIR [/etc], UNITDIR [/etc/systemd/system], CNI_BIN_DIR
# [/opt/cni/bin], STATE_DIR [/var/lib/cell]. With an empty DESTDIR and
# systemd running, systemd is told about the unit (daemon-reload; on
# uninstall, the service is disabled and stopped first: stopping celld
# leaves the containers running).
set -euo pipefail

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
SYSCONFDIR=${SYSCONFDIR:-/etc}
UNITDIR=${UNITDIR:-/etc/systemd/system}
CNI_BIN_DIR=${CNI_BIN_DIR:-/opt/cni/bin}
STATE_DIR=${STATE_DIR:-/var/lib/cell}
DESTDIR=${DESTDIR%/}

repo=$(cd "$(dirname "$0")/.." && pwd)
manifest="$PREFIX/share/cell/install-manifest"
config="$SYSCONFDIR/cell/celld.toml"
unit="$UNITDIR/celld.service"

usage="usage: scripts/install.sh [--from DIR] | --uninstall [--purge]"
die() {
    echo "install.sh: $*" >&2
    exit 1
}
note() { echo "$*" >&2; }

action=install
from=
purge=false
while (($#)); do
    case $1 in
        --uninstall) action=uninstall ;;
        --purge) purge=true ;;
        --from)
            (($# >= 2)) || die "--from needs a directory; $usage"
            from=$2
            shift
            ;;
        --from=*) from=${1#--from=} ;;
        -h | --help)
            echo "$usage"
            exit 0
            ;;
        *) die "unknown argument '$1'; $usage" ;;
    esac
    shift
done
[[ $action == uninstall || $purge == false ]] || die "--purge goes with --uninstall; $usage"
[[ $action == install || -z $from ]] || die "--from goes with an install; $usage"
for var in PREFIX SYSCONFDIR UNITDIR CNI_BIN_DIR STATE_DIR; do
    [[ ${!var} == /* ]] || die "$var must be an absolute path, not '${!var}'"
done
[[ $(realpath -m "$STATE_DIR") != / ]] || die "STATE_DIR must not be /"
[[ -z $DESTDIR || $DESTDIR == /* ]] || die "DESTDIR must be an absolute path, not '$DESTDIR'"

# systemd is told only about a unit on this machine's own /, and only when
# it runs (not in a container or a chroot without it).
systemd_running() { [[ -z $DESTDIR && -d /run/systemd/system ]] && command -v systemctl >/dev/null; }

# --- install ------------------------------------------------------------

# The manifest's lines: "file PATH", "config PATH SHA256" (removed only if
# unchanged), "dir PATH" (created by the install, removed if empty); PATH
# without DESTDIR.
entries=()

# Creates DESTDIR/$1 and its missing parents, recording each one made.
make_dir() {
    local dir=$1 missing=()
    while [[ $dir != / && ! -d $DESTDIR$dir ]]; do
        missing=("$dir" "${missing[@]}")
        dir=$(dirname "$dir")
    done
    for dir in "${missing[@]}"; do
        mkdir -m 0755 "$DESTDIR$dir"
        entries+=("dir $dir")
    done
}

# install_file MODE SOURCE TARGET
install_file() {
    make_dir "$(dirname "$3")"
    install -m "$1" "$2" "$DESTDIR$3"
    entries+=("file $3")
    note "installed $3"
}

install_all() {
    # Global: the EXIT trap runs after this function's locals are gone.
    workdir=$(mktemp -d)
    trap 'rm -rf "$workdir"' EXIT
    if [[ -z $from ]]; then
        command -v cargo >/dev/null ||
            die "no cargo to build cell with: build it first (cargo build --release) and pass --from target/release"
        note "building cell (cargo build --release)..."
        (cd "$repo" && cargo build --release --quiet -p cell -p cell-cni --bins)
        from="$repo/target/release"
    fi
    [[ -d $from ]] || die "--from '$from' is not a directory"
    for bin in cell celld; do
        [[ -x $from/$bin ]] || die "no executable '$bin' in '$from'"
    done
    local cell="$from/cell"
    [[ -z $DESTDIR ]] || mkdir -p "$DESTDIR"

    # A previous install's config entry carries over, so that an unchanged
    # config is still removed by --uninstall after a reinstall.
    local old_config_entry=
    if [[ -f $DESTDIR$manifest ]]; then
        old_config_entry=$(grep -E "^config $config " "$DESTDIR$manifest" || true)
    fi

    install_file 0755 "$from/celld" "$PREFIX/bin/celld"
    install_file 0755 "$cell" "$PREFIX/bin/cell"
    if [[ -x $from/cell-cni ]]; then
        install_file 0755 "$from/cell-cni" "$CNI_BIN_DIR/cell-cni"
    else
        note "skipped $CNI_BIN_DIR/cell-cni: '$from' has no cell-cni binary"
    fi

    local shell target
    for shell in bash zsh fish; do
        case $shell in
            bash) target="$PREFIX/share/bash-completion/completions/cell" ;;
            zsh) target="$PREFIX/share/zsh/site-functions/_cell" ;;
            fish) target="$PREFIX/share/fish/vendor_completions.d/cell.fish" ;;
        esac
        if "$cell" completion "$shell" >"$workdir/completion.$shell" 2>/dev/null &&
            [[ -s $workdir/completion.$shell ]]; then
            install_file 0644 "$workdir/completion.$shell" "$target"
        else
            note "skipped the $shell completion: this cell has no 'cell completion $shell'"
        fi
    done

    local page section
    mkdir "$workdir/man"
    if "$cell" man "$workdir/man" >/dev/null 2>&1; then
        while IFS= read -r -d '' page; do
            section=$(basename "$page" .gz)
            section=${section##*.}
            install_file 0644 "$page" "$PREFIX/share/man/man$section/$(basename "$page")"
        done < <(find "$workdir/man" -type f -regex '.*\.[1-8]\(\.gz\)?' -print0 | sort -z)
    else
        note "skipped the man pages: this cell has no 'cell man DIR'"
    fi

    sed -e "s#/usr/local/bin/celld#$PREFIX/bin/celld#" \
        -e "s#/etc/cell/celld.toml#$config#" \
        -e "s#into /etc/systemd/system#into $UNITDIR#" \
        "$repo/contrib/systemd/celld.service" >"$workdir/celld.service"
    install_file 0644 "$workdir/celld.service" "$unit"

    if [[ -e $DESTDIR$config ]]; then
        note "kept the existing $config"
        [[ -z $old_config_entry ]] || entries+=("$old_config_entry")
    else
        make_dir "$(dirname "$config")"
        sed -e "s#\"/var/lib/cell\"#\"$STATE_DIR\"#" "$repo/contrib/celld.toml" >"$DESTDIR$config"
        chmod 0644 "$DESTDIR$config"
        entries+=("config $config $(sha256sum <"$DESTDIR$config" | cut -d' ' -f1)")
        note "installed $config"
    fi

    make_dir "$(dirname "$manifest")"
    # What a previous install put there and this one did not overwrite
    # (a completion this cell no longer makes, the directories it created)
    # is still ours to remove; its config entry was dealt with above.
    local line
    if [[ -f $DESTDIR$manifest ]]; then
        while IFS= read -r line; do entries+=("$line"); done < <(grep -v '^config ' "$DESTDIR$manifest")
    fi
    printf '%s\n' "${entries[@]}" "file $manifest" | awk '!seen[$0]++' >"$DESTDIR$manifest"
    note "installed $manifest"

    if systemd_running; then
        systemctl daemon-reload
        if systemctl is-active --quiet celld.service; then
            note "celld runs the previous binary until: systemctl restart celld (containers keep running)"
        else
            note "start celld now and at boot with: systemctl enable --now celld"
        fi
    fi
}

# --- uninstall ----------------------------------------------------------

# Whether anything is mounted at or below DESTDIR/$1.
mounted_under() {
    local dir
    dir=$(realpath -m "$DESTDIR$1")
    # mountinfo's fifth field is the mount point, with spaces as \040.
    awk -v dir="$dir" '{ gsub(/\\040/, " ", $5) } $5 == dir || index($5, dir "/") == 1 { found = 1 }
        END { exit !found }' /proc/self/mountinfo
}

uninstall_all() {
    if $purge && mounted_under "$STATE_DIR"; then
        die "not purging $DESTDIR$STATE_DIR: file systems are mounted below it (running containers); stop celld and remove the containers first, or uninstall without --purge"
    fi
    if [[ ! -f $DESTDIR$manifest ]]; then
        # A purge after a plain uninstall still has what that one kept: the
        # state, and the config if it was changed.
        $purge && [[ -e $DESTDIR$STATE_DIR || -e $DESTDIR$config ]] ||
            die "nothing to uninstall: no $DESTDIR$manifest (was cell installed with this PREFIX and DESTDIR?)"
        if [[ -e $DESTDIR$config ]]; then
            rm -f "$DESTDIR$config"
            rmdir "$DESTDIR$(dirname "$config")" 2>/dev/null || true
            note "removed $config"
        fi
        if [[ -e $DESTDIR$STATE_DIR ]]; then
            rm -rf --one-file-system -- "$DESTDIR$STATE_DIR"
            note "purged $STATE_DIR"
        fi
        return
    fi
    if systemd_running && {
        systemctl is-enabled --quiet celld.service 2>/dev/null ||
            systemctl is-active --quiet celld.service 2>/dev/null
    }; then
        # KillMode=process: the containers keep running under their supervisors.
        systemctl disable --now celld.service
        note "stopped and disabled celld.service (containers keep running)"
    fi

    local kind path sum dirs=()
    while read -r kind path sum; do
        case $kind in
            file)
                rm -f "$DESTDIR$path"
                note "removed $path"
                ;;
            config)
                if [[ ! -e $DESTDIR$path ]]; then
                    continue
                elif $purge || [[ $(sha256sum <"$DESTDIR$path" | cut -d' ' -f1) == "$sum" ]]; then
                    rm -f "$DESTDIR$path"
                    note "removed $path"
                else
                    note "kept $path: it was changed since the install (--purge removes it)"
                fi
                ;;
            dir) dirs+=("$path") ;;
        esac
    done <"$DESTDIR$manifest"

    if $purge && [[ -e $DESTDIR$STATE_DIR ]]; then
        rm -rf --one-file-system -- "$DESTDIR$STATE_DIR"
        note "purged $STATE_DIR"
    elif [[ -e $DESTDIR$STATE_DIR ]]; then
        note "kept the state in $STATE_DIR (--purge removes it)"
    fi

    # Deepest first; a directory that still holds something stays.
    local dir
    while IFS= read -r dir; do
        [[ -n $dir ]] && rmdir "$DESTDIR$dir" 2>/dev/null || true
    done < <(printf '%s\n' "${dirs[@]}" | awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2-)

    if systemd_running; then
        systemctl daemon-reload
    fi
}

case $action in
    install) install_all ;;
    uninstall) uninstall_all ;;
esac
