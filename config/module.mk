config_SRCS := config/parse.c config/schema.c config/format.c config/pattern.c \
	config/filter.c config/target.c config/template.c config/yaml.c config/env.c \
	config/load.c
config_PKGS := json-c libpcre2-8 yaml-0.1
config_DEPS := common
