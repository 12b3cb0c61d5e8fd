# tests/cluster: programs the namespace mini cluster runs (tests/cluster/README.md).
$(O)/tests/cluster/podapp: tests/cluster/podapp.c
	$(call quiet,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) -std=gnu17 -D_GNU_SOURCE $(WARN) -O2 -static -o $@ $<
TEST_PROGRAMS += $(O)/tests/cluster/podapp
