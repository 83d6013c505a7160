# %postun: what %systemd_postun_with_restart does: on upgrade ($1 >= 1),
# restart a running service, but only with a configuration that passes.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -ge 1 ] && /usr/sbin/diode-gateway --check --config /etc/diode/gateway.toml >/dev/null 2>&1; then
    systemctl try-restart diode.service >/dev/null 2>&1 || :
fi
exit 0
