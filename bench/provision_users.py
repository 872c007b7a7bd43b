"""Create N digest users directly in a fresh sipbox SQLite store and write SIPp's injection CSV.

Usage: provision_users.py STATE_DIR REALM COUNT CSV_PATH  (users 100000.., password pw<number>)
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from sipbox.pbx.users import password_fields
from sipbox.storage import NewUser, open_store


async def main(state_dir: Path, realm: str, count: int, csv: Path) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(f"sqlite:///{state_dir}/sipbox.db")
    await store.migrate()
    numbers = [str(100000 + i) for i in range(count)]
    try:
        for start in range(0, count, 2000):
            batch = numbers[start : start + 2000]
            await store.create_users(
                [NewUser(number=n, **password_fields(n, realm, f"pw{n}")) for n in batch]
            )
    finally:
        await store.close()
    auth = "[authentication username={0} password=pw{0}]"
    csv.write_text("SEQUENTIAL\n" + "".join(f"{n};pw{n};{auth.format(n)}\n" for n in numbers))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])))
