proto_SRCS := proto/wire.c proto/frame.c proto/msg.c proto/handshake.c proto/credit.c proto/client.c
proto_PKGS :=
proto_DEPS := common
