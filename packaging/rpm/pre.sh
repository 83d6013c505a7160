# %pre: the system user and group diode, before the files (the users file
# is %attr(0640,root,diode)). Kept on erase.
getent group diode >/dev/null || groupadd -r diode
getent passwd diode >/dev/null || \
    useradd -r -g diode -d /nonexistent -M -s /sbin/nologin -c "Diode gateway" diode
exit 0
