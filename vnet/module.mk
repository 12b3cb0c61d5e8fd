vnet_SRCS := vnet/packet.c vnet/nat.c vnet/tun.c vnet/relay.c vnet/loopback.c vnet/diag.c
vnet_PKGS := libnl-route-3.0
vnet_DEPS := proto common
vnet_SRCS += vnet/deliver.c
