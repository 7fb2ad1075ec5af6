SUMMARY = "MQTT broker (3.1, 3.1.1, 5.0) for Linux edge gateways"
DESCRIPTION = "hato runs one io_uring event loop (epoll fallback) and keeps \
QoS 1/2 messages in a checksummed append log that survives power cuts."
SECTION = "net"
LICENSE = "MIT"
# The MIT (Expat) text in the Debian copyright file.
LIC_FILES_CHKSUM = "file://packaging/debian/copyright;beginline=8;endline=25;md5=f6f65b30fae9d99b5dd5f01c9a38a13a"

# Where the sources come from: set HATO_GIT_URI (a git:// or https URL with
# ;protocol=...;branch=...) and SRCREV in local.conf or a bbappend, or build
# a checkout with externalsrc: EXTERNALSRC:pn-hato = "/path/to/hato".
HATO_GIT_URI ??= "git://${TOPDIR}/../hato;protocol=file;branch=main"
SRC_URI = "${HATO_GIT_URI}"
SRCREV ??= "${AUTOREV}"
PV = "0.1.0+git${SRCPV}"
S = "${WORKDIR}/git"

inherit meson pkgconfig systemd useradd

DEPENDS = "liburing wolfssl tomlplusplus"

# The unit tests need doctest and run on the build host only; not in images.
EXTRA_OEMESON = "-Dtests=false -Dio_uring=enabled"

# sd_notify is spoken over the socket directly (no libsystemd, no build
# option): hato notifies whenever $NOTIFY_SOCKET is set.

SYSTEMD_SERVICE:${PN} = "hato.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system hato"
USERADD_PARAM:${PN} = "--system --gid hato --home-dir /var/lib/hato \
                       --no-create-home --shell /sbin/nologin hato"

do_install:append() {
    install -d ${D}${sysconfdir}/hato
    install -m 0644 ${S}/packaging/hato.toml ${D}${sysconfdir}/hato/hato.toml

    install -d -m 0750 -o hato -g hato ${D}${localstatedir}/lib/hato

    if ${@bb.utils.contains('DISTRO_FEATURES', 'systemd', 'true', 'false', d)}; then
        install -d ${D}${systemd_system_unitdir}
        install -m 0644 ${S}/packaging/systemd/hato.service ${D}${systemd_system_unitdir}/
    fi

    install -d ${D}${mandir}/man8 ${D}${mandir}/man5
    install -m 0644 ${S}/packaging/man/hato.8 ${D}${mandir}/man8/
    install -m 0644 ${S}/packaging/man/hato.toml.5 ${D}${mandir}/man5/
}

CONFFILES:${PN} = "${sysconfdir}/hato/hato.toml"
FILES:${PN} += "${localstatedir}/lib/hato"
