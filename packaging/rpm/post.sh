# %post: what %systemd_post does (Debian's rpm has no systemd-rpm-macros).
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 1 ]; then
    systemctl --no-reload preset diode.service >/dev/null 2>&1 || :
fi
exit 0
