dns_SRCS := dns/message.c
dns_PKGS :=
dns_DEPS := common
