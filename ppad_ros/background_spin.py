"""One rclpy node spun in a background thread that stops cleanly: used by the bag tool's live replay
(`ppad_ros/live_replay.py`), the ROS tests' probe (`test/ros_helpers.py`) and the ROS benchmarks."""

from __future__ import annotations

import threading

from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node


class BackgroundSpinner:
    """Runs `node`'s callbacks on its own executor in a daemon thread until `stop()`.

    `stop()` ends the loop and joins the thread before it shuts the executor down and destroys the node.
    Shutting an executor down from another thread while `Executor.spin()` is inside a wait (what
    `Thread(target=executor.spin)` invites) once left a test probe's spin thread in a busy loop that held
    the GIL and stalled the process for minutes; here no thread is spinning when the node goes away."""

    def __init__(self, node: Node, poll_s: float = 0.05) -> None:
        self.node, self.poll_s = node, poll_s
        self.executor = SingleThreadedExecutor(context=node.context)
        self.executor.add_node(node)
        self._stopping = threading.Event()
        self.thread = threading.Thread(target=self._spin, name=f"spin {node.get_name()}", daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        while not self._stopping.is_set() and self.executor.context.ok():
            self.executor.spin_once(timeout_sec=self.poll_s)  # returns within poll_s, so the stop is seen

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop spinning, then shut the executor down and destroy the node; safe to call twice."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self.thread.join(timeout_s)
        self.executor.shutdown(timeout_sec=timeout_s)
        self.node.destroy_node()
