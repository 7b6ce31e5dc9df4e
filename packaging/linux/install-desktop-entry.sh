#!/bin/sh
# Adds Annotator to this user's application menu (Linux): run it from the unpacked app folder.
# It writes annotator.desktop (pointing at this folder's executable) to
# $XDG_DATA_HOME/applications (~/.local/share/applications) and the icon to the hicolor theme.
# To remove it: delete those two files.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
case $here in
  *[\\\"\`\$\|\&%]*) echo "move the folder to a path without \\ \" \` \$ | & % first: $here" >&2; exit 1 ;;
esac
data=${XDG_DATA_HOME:-$HOME/.local/share}
apps=$data/applications
icons=$data/icons/hicolor/256x256/apps
mkdir -p "$apps" "$icons"
cp "$here/annotator.png" "$icons/annotator.png"
sed -e "s|^Exec=.*|Exec=\"$here/annotator\" gui %f|" -e "s|^Icon=.*|Icon=$icons/annotator.png|" \
    "$here/annotator.desktop" > "$apps/annotator.desktop"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database "$apps" >/dev/null 2>&1 || true
echo "$apps/annotator.desktop"
