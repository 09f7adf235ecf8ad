"""greeter: greet(id) asks the host for user `id`, answers {"greeting": "Hello, <name>!"},
and publishes greeting.sent."""
from logomesh import LogoMeshError, Plugin

plugin = Plugin()


@plugin.method
async def greet(id):
    user = await plugin.call("get_user", {"id": id}, timeout=5.0)
    if not isinstance(user, dict) or not isinstance(user.get("name"), str):
        raise LogoMeshError("LM_PLUGIN_ERROR", "the host's get_user did not answer {\"name\": ...}", {"answer": user})
    greeting = f"Hello, {user['name']}!"
    await plugin.emit("greeting.sent", {"id": id, "greeting": greeting})
    return {"greeting": greeting}


if __name__ == "__main__":
    plugin.run()
