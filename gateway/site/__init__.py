"""The neutral site layer: the CIM site model, gateway options, the whole site file and its YAML
loader. It imports only firmware_sim and the protocol registry (gateway.protocols)."""
