# %preun: what %systemd_preun does: on erase ($1 = 0), disable and stop.
if [ "$1" -eq 0 ]; then
    systemctl --no-reload disable --now diode.service >/dev/null 2>&1 || :
fi
exit 0
