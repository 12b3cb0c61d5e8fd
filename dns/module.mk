dns_SRCS := dns/message.c dns/server.c
dns_PKGS := libcares
dns_DEPS := proto common
