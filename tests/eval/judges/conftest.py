import pytest

from chat_server import ChatServer


@pytest.fixture
def chat_server():
    """Start a loopback chat-completions server with a script; every server is stopped at teardown."""
    servers = []

    def start(script=None, default=None):
        server = ChatServer(script, default).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
